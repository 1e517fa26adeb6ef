"""gnn.device, gnn.cuda, gnn.accelerator, gnn.backends and Tensor.is_cuda, as in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import gnn


def test_device_objects_parse_like_torch_device() -> None:
    assert gnn.device("cuda:1") == gnn.device("cuda", 1)
    assert gnn.device("cuda:1").type == "cuda" and gnn.device("cuda:1").index == 1
    assert str(gnn.device("cuda")) == "cuda" and gnn.device("cuda").index is None
    assert gnn.device("cpu").type == "cpu" and gnn.device("cpu").index is None
    assert gnn.device("cpu") == "cpu" and gnn.device("cuda") == "cuda:0"
    assert isinstance(gnn.device("cpu"), gnn.device)
    assert {gnn.device("cuda"), gnn.device("cuda:0")} == {gnn.device("cuda", 0)}
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        gnn.device("tpu")
    with pytest.raises(ValueError, match="index must be an integer >= 0"):
        gnn.device("cuda", -1)
    with pytest.raises(ValueError, match="already names an index"):
        gnn.device("cuda:1", 2)
    with pytest.raises(TypeError, match="type must be a string"):
        gnn.device(3)


def test_device_objects_work_where_strings_do() -> None:
    dev = gnn.device("cpu")
    t = gnn.zeros(2, 3, device=dev)
    assert t.device == dev and t.device.type == "cpu"
    assert not t.is_cuda and t.is_cpu
    assert t.to(dev) is t
    lin = gnn.nn.Linear(2, 2).to(dev)
    assert lin.weight.device == dev
    assert gnn.tensor([1.0], device=dev).device.type == "cpu"


def test_cuda_namespace_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    assert gnn.cuda.is_available() is False
    assert gnn.cuda.device_count() == 0
    assert gnn.accelerator.is_available() is False
    assert gnn.accelerator.current_accelerator() is None
    assert gnn.accelerator.device_count() == 0
    gnn.cuda.manual_seed(1)  # ignored, as in PyTorch
    gnn.cuda.manual_seed_all(1)
    with pytest.raises(RuntimeError, match="needs CuPy"):
        gnn.cuda.synchronize()
    with pytest.raises(RuntimeError, match="no CUDA device 0"):
        gnn.cuda.set_device(0)
    assert gnn.cuda.is_bf16_supported() is False
    assert gnn.backends.cuda.is_built() is False


def test_backends_switches_are_accepted() -> None:
    import gnn.backends.cudnn as cudnn

    old = (cudnn.benchmark, cudnn.deterministic, gnn.backends.cuda.matmul.allow_tf32)
    try:
        cudnn.benchmark = True
        cudnn.deterministic = True
        gnn.backends.cuda.matmul.allow_tf32 = True
        gnn.backends.cudnn.allow_tf32 = True
        assert gnn.backends.cudnn.benchmark is True
        assert gnn.backends.mps.is_available() is False
        a = gnn.tensor(np.arange(6.0).reshape(2, 3), dtype=gnn.float32)
        np.testing.assert_array_equal((a @ a.T).numpy(), a.numpy() @ a.numpy().T)
    finally:
        cudnn.benchmark, cudnn.deterministic, gnn.backends.cuda.matmul.allow_tf32 = old
        gnn.backends.cudnn.allow_tf32 = False


def test_cuda_seed_reproduces_gpu_draws_and_leaves_cpu_alone(device: str) -> None:
    if device == "cpu":
        pytest.skip("the CUDA generators need a GPU")
    assert gnn.cuda.is_available() and gnn.cuda.device_count() >= 1
    assert gnn.accelerator.current_accelerator() == gnn.device("cuda")
    gnn.manual_seed(0)
    cpu_first = gnn.randn(3).numpy()
    gnn.manual_seed(0)
    gnn.cuda.manual_seed(5)
    a = gnn.randn(4, device="cuda").numpy()
    assert np.array_equal(gnn.randn(3).numpy(), cpu_first)  # the CPU generator is untouched
    gnn.cuda.manual_seed_all(5)
    b = gnn.randn(4, device="cuda").numpy()
    np.testing.assert_array_equal(a, b)
    t = gnn.ones(2, device=gnn.device("cuda:0"))
    assert t.is_cuda and not t.is_cpu and t.device.type == "cuda"
    gnn.cuda.synchronize()
    gnn.cuda.synchronize("cuda:0")
    gnn.cuda.set_device(0)
    assert gnn.cuda.current_device() == 0


def test_matmul_precision_is_accepted_and_checked() -> None:
    old = gnn.get_float32_matmul_precision()
    try:
        gnn.set_float32_matmul_precision("high")
        assert gnn.get_float32_matmul_precision() == "high"
        with pytest.raises(ValueError, match="expected 'highest', 'high' or 'medium'"):
            gnn.set_float32_matmul_precision("fast")
    finally:
        gnn.set_float32_matmul_precision(old)


def test_to_and_cuda_take_pytorch_arguments() -> None:
    t = gnn.tensor([1.0, 2.0])
    assert t.to("cpu", non_blocking=True) is t
    c = t.to("cpu", copy=True)
    assert c is not t and c.tolist() == [1.0, 2.0] and c.array is not t.array
    assert t.to(gnn.float64, copy=True).dtype == np.float64
    with pytest.raises(ValueError, match="expected a CUDA device"):
        t.cuda("cpu")


def test_cuda_method_forms(device: str) -> None:
    if device == "cpu":
        pytest.skip("needs a GPU")
    t = gnn.ones(2)
    for form in (None, 0, "cuda", "cuda:0", gnn.device("cuda", 0)):
        moved = t.cuda() if form is None else t.cuda(form)
        assert moved.is_cuda and moved.device == gnn.device("cuda:0")
    assert t.cuda(non_blocking=True).is_cuda
