"""OpenVINO engine (CPU): the exported model compiled for each input shape it meets (static shapes run faster than
OpenVINO's dynamic ones: 122 vs 152 ms for RVM's network on one core here), the last few kept compiled.

Precision: OpenVINO's CPU plugin computes in bf16 on processors with AMX / AVX-512-BF16 unless told otherwise;
fp32 models are compiled with ``INFERENCE_PRECISION_HINT=f32`` so the numbers stay those of the torch path.
Denormal numbers are flushed to zero (``CPU_DENORMALS_OPTIMIZATION``): RVM's network at 270x480 runs 75 -> 54 ms
with it here (values below 1e-38 change by less than themselves).
"""
from __future__ import annotations

from collections import OrderedDict

KEEP = 4   # compiled shapes kept per model


def version() -> str:
    import openvino as ov

    v = ov.__version__ if hasattr(ov, "__version__") else ov.get_version()
    return str(v).split("-")[0]


class OVEngine:
    name = "openvino"

    def __init__(self, path, device, threads: int, half: bool = False):
        import openvino as ov

        if device.type != "cpu":
            raise ValueError("the OpenVINO engine runs models on the CPU")
        self.core = ov.Core()
        self.path = str(path)
        self.config = {"INFERENCE_NUM_THREADS": max(1, int(threads)), "PERFORMANCE_HINT": "LATENCY",
                       "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f16" if half else "f32",
                       "CPU_DENORMALS_OPTIMIZATION": True}
        self.compiled: OrderedDict = OrderedDict()

    def _request(self, shapes: tuple):
        req = self.compiled.get(shapes)
        if req is not None:
            self.compiled.move_to_end(shapes)
            return req
        model = self.core.read_model(self.path)
        names = {p.get_any_name(): i for i, p in enumerate(model.inputs)}
        model.reshape({p: list(shapes[int(p.get_any_name()[2:])]) for p in model.inputs if p.get_any_name() in names})
        cm = self.core.compile_model(model, "CPU", self.config)
        req = (cm, cm.create_infer_request(), [p.get_any_name() for p in model.inputs])
        self.compiled[shapes] = req
        while len(self.compiled) > KEEP:
            self.compiled.popitem(last=False)
        return req

    def run(self, tensors: list) -> list:
        import torch

        shapes = tuple(tuple(t.shape) for t in tensors)
        cm, req, names = self._request(shapes)
        feed = {n: tensors[int(n[2:])].detach().contiguous().numpy() for n in names}
        res = req.infer(feed, share_inputs=True)   # outputs are copies: states go back in as the next inputs
        return [torch.from_numpy(res[o]) for o in cm.outputs]
