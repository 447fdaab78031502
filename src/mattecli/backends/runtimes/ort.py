"""onnxruntime engine: CPU, or CUDA (TensorRT first when its provider is present) for models on a CUDA device.

CPU: torch tensors go in as numpy views (no copy for contiguous tensors) and outputs come back as torch tensors
sharing onnxruntime's buffers. CUDA: IO binding on the torch tensors' device memory (no host round trip), outputs
bound on the device and handed to torch through DLPack where this onnxruntime build offers it.
"""
from __future__ import annotations


def cuda_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    have = ort.get_available_providers()
    return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in have]


def version() -> str:
    import onnxruntime as ort

    return ort.__version__


class OrtEngine:
    name = "onnxruntime"

    def __init__(self, path, device, threads: int, half: bool = False):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_cpu_mem_arena = False   # memory goes back after each run, as torch's does (the guard counts on it)
        so.add_session_config_entry("session.set_denormal_as_zero", "1")   # see ov.py: denormals cost a third
        self.device = device
        if device.type == "cuda":
            idx = device.index or 0
            providers = []
            for p in cuda_providers():
                if p == "TensorrtExecutionProvider":
                    providers.append((p, {"device_id": idx, "trt_fp16_enable": bool(half)}))
                else:
                    providers.append((p, {"device_id": idx}))
            providers.append("CPUExecutionProvider")
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, tensors: list) -> list:
        import torch

        by_name = {f"in{i}": t for i, t in enumerate(tensors)}
        if self.device.type != "cuda":
            feed = {n: by_name[n].detach().contiguous().numpy() for n in self.inputs}
            return [torch.from_numpy(o) for o in self.session.run(self.outputs, feed)]
        return self._run_cuda(by_name)

    def _run_cuda(self, by_name: dict) -> list:
        import numpy as np
        import torch

        io = self.session.io_binding()
        idx = self.device.index or 0
        keep = []
        for n in self.inputs:
            t = by_name[n].detach().contiguous()
            keep.append(t)
            io.bind_input(n, "cuda", idx, torch.empty((), dtype=t.dtype).numpy().dtype if t.dtype != torch.bfloat16
                          else np.float32, tuple(t.shape), t.data_ptr())
        for n in self.outputs:
            io.bind_output(n, "cuda", idx)
        self.session.run_with_iobinding(io)
        outs = []
        for v in io.get_outputs():
            try:
                outs.append(torch.utils.dlpack.from_dlpack(v.to_dlpack()))
            except (AttributeError, RuntimeError):
                outs.append(torch.from_numpy(v.numpy()).to(self.device))
        return outs
