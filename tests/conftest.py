"""Process-wide test settings, and isolation of the process-global state a test may change.

- One intra-op thread, here and in every subprocess a test starts (OMP_NUM_THREADS is inherited):
  CI runs on a loaded 2-core machine, where torch's two spinning OpenMP threads next to other
  work ran a training step ~10× slower (4.4 vs 0.42 s/iter, measured), and the tests' tensors
  are too small to gain from a second thread on a quiet one.
- After each test, the torch settings that live in the process (thread count, deterministic
  algorithms, default dtype, grad mode, the global RNG) are put back as they were, so no test's
  outcome depends on which tests ran before it in the same process.
"""
import os
import random
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# tests import their shared fixtures module (tests/fixtures.py) by name
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _restore_process_globals():
    threads = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)
    torch.set_rng_state(rng[0])
    np.random.set_state(rng[1])
    random.setstate(rng[2])
