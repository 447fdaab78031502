"""Shared backbones: torchvision-compatible parameter names and counts, output strides, dilation."""
from __future__ import annotations

import pytest
import torch

from mattecli.backends.layers import mobilenetv2, mobilenetv3, resnet

@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: the shared 2-core CI machine is oversubscribed and OpenMP spinning makes 2 threads
    ~50x slower there; results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# torchvision's published parameter counts (torchvision.models docs, "Params" column / sum of numel)
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
}

BUILDERS = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet101": resnet.resnet101,
    "resnet152": resnet.resnet152,
    "mobilenet_v2": mobilenetv2.MobileNetV2,
    "mobilenet_v3_large": mobilenetv3.mobilenet_v3_large,
    "mobilenet_v3_small": mobilenetv3.mobilenet_v3_small,
}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def build(name, **kw):
    with torch.device("meta"):
        return BUILDERS[name](**kw)


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_match_torchvision(name):
    assert n_params(build(name)) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name,keys", [
    ("resnet50", {"conv1.weight": (64, 3, 7, 7), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                  "layer4.2.bn3.running_var": (2048,), "fc.weight": (1000, 2048), "fc.bias": (1000,)}),
    ("resnet18", {"layer2.0.downsample.1.weight": (128,), "layer4.1.conv2.weight": (512, 512, 3, 3)}),
    ("mobilenet_v2", {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                      "features.2.conv.3.weight": (24,), "features.18.0.weight": (1280, 320, 1, 1),
                      "classifier.1.weight": (1000, 1280)}),
    ("mobilenet_v3_large", {"features.0.0.weight": (16, 3, 3, 3), "features.1.block.0.0.weight": (16, 1, 3, 3),
                            "features.4.block.2.fc1.weight": (24, 72, 1, 1),
                            "features.4.block.2.fc2.bias": (72,), "features.15.block.3.1.running_mean": (160,),
                            "features.16.0.weight": (960, 160, 1, 1), "classifier.0.weight": (1280, 960),
                            "classifier.3.weight": (1000, 1280)}),
    ("mobilenet_v3_small", {"features.1.block.1.fc1.weight": (8, 16, 1, 1), "features.12.0.weight": (576, 96, 1, 1),
                            "classifier.0.weight": (1024, 576)}),
])
def test_torchvision_key_names(name, keys):
    sd = build(name).state_dict()
    for k, shape in keys.items():
        assert k in sd, k
        assert tuple(sd[k].shape) == shape, k


def test_mobilenetv3_batchnorm_defaults_and_activations():
    m = build("mobilenet_v3_large")
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    assert isinstance(m.features[0][2], torch.nn.Hardswish)
    assert isinstance(m.features[4].block[2].scale_activation, torch.nn.Hardsigmoid)
    assert isinstance(m.features[1].block[0][2], torch.nn.ReLU)


def test_headless_variants_drop_classifier():
    assert "fc.weight" not in build("resnet50", num_classes=None).state_dict()
    sd = build("mobilenet_v3_large", num_classes=None).state_dict()
    assert not any(k.startswith("classifier") for k in sd)
    assert n_params(build("mobilenet_v3_large", num_classes=None)) == 2_971_952  # features only


@pytest.mark.parametrize("os_,expect", [(32, [2, 4, 8, 16, 32]), (16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])])
def test_resnet_output_stride(os_, expect):
    torch.manual_seed(0)
    m = resnet.resnet18(num_classes=None, output_stride=os_).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        feats = m.forward_features(x)
    assert [64 // f.shape[2] for f in feats] == expect
    assert [96 // f.shape[3] for f in feats] == expect


def test_resnet_dilation_follows_torchvision():
    m = resnet.resnet50(num_classes=None, replace_stride_with_dilation=[False, False, True])
    # first block of the dilated stage keeps the previous dilation (1), the others get 2
    assert m.layer4[0].conv2.dilation == (1, 1) and m.layer4[0].conv2.stride == (1, 1)
    assert m.layer4[1].conv2.dilation == (2, 2) and m.layer4[1].conv2.padding == (2, 2)
    assert m.layer4[0].downsample[0].stride == (1, 1)
    m8 = resnet.resnet50(num_classes=None, output_stride=8)
    assert m8.layer3[1].conv2.dilation == (2, 2) and m8.layer4[1].conv2.dilation == (4, 4)
    assert m8.layer4[0].conv2.dilation == (2, 2)


def test_mobilenetv3_dilated_output_stride_16():
    torch.manual_seed(0)
    m = mobilenetv3.mobilenet_v3_large(num_classes=None, dilated=True).eval()
    assert m.features[13].block[1][0].dilation == (2, 2) and m.features[13].block[1][0].stride == (1, 1)
    assert m.features[13].block[1][0].padding == (4, 4)
    assert not m.features[13].use_res_connect  # torchvision tests the configured stride (2)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        f = m.forward_features(x, (1, 3, 6, 16))
    assert [t.shape[1] for t in f] == [16, 24, 40, 960]
    assert [96 // t.shape[2] for t in f] == [2, 4, 8, 16]
    plain = mobilenetv3.mobilenet_v3_large(num_classes=None).eval()
    with torch.no_grad():
        assert plain(x).shape[2:] == (3, 4)  # output stride 32
    # dilation changes no parameter
    assert n_params(m) == n_params(plain)


def test_mobilenetv3_classifier_forward_and_odd_size():
    torch.manual_seed(0)
    m = mobilenetv3.mobilenet_v3_small(num_classes=10).eval()
    with torch.no_grad():
        y = m(torch.rand(2, 3, 67, 45))
    assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_mobilenetv2_dilate_from_keeps_resolution():
    torch.manual_seed(0)
    m = mobilenetv2.MobileNetV2(num_classes=None).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        base = m.forward_features(x)
    assert [64 // t.shape[2] for t in base] == [2, 4, 8, 16, 32]
    m.dilate_from(14, 2)
    with torch.no_grad():
        dil = m.forward_features(x)
    assert [64 // t.shape[2] for t in dil] == [2, 4, 8, 16, 16]
