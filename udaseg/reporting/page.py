"""The parts every udaseg HTML page shares: its style sheet, embedded PNG images and the
matplotlib figures they are drawn on (the object API on the Agg canvas: no pyplot state, no display)."""
from __future__ import annotations

import base64
import html

CSS = """
body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
p,.note{font-size:13px;max-width:1100px} .note{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{border:1px solid #d0d7de;padding:3px 5px;text-align:right}
table.runs td,table.runs th{text-align:left}
th.run{text-align:left;white-space:nowrap} th.cls{vertical-align:bottom;height:86px;width:30px;padding:2px}
th.cls span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}
td.miou,th.miou{background:#f6f8fa;font-weight:600} td.best{font-weight:700;text-decoration:underline}
tr.oracle th.run,tr.oracle td{color:#8250df;font-style:italic} tr.gt td,tr.gt th{background:#f6f8fa}
.sub{font-size:10px;color:#57606a;font-weight:400}
table.grid td,table.grid th{border:none;padding:2px;text-align:center;vertical-align:top}
table.grid img{display:block} tr.ent td{padding-bottom:10px}
.legend{font-size:11px;margin:4px 0} .sw{display:inline-block;margin:2px 8px 2px 0}
.sw i{display:inline-block;width:12px;height:12px;margin-right:3px;vertical-align:middle;border:1px solid #999}
img.plot{max-width:100%}
"""


def img_tag(png: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    style = f' style="{css}"' if css else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{style}>'


def figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def fig_png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
