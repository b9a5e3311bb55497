import sys
from pathlib import Path

# tests import their shared fixtures module (tests/fixtures.py) by name
sys.path.insert(0, str(Path(__file__).parent))
