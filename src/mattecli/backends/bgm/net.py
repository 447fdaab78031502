"""Background Matting v1 (Sengupta et al., CVPR 2020): the generator ``ResnetConditionHR``.

Follows github.com/senguptaumd/Background-Matting @ 90765850 (networks.py) with
``input_nc=(3, 3, 1, 4), output_nc=4, n_blocks1=7, n_blocks2=3`` (ngf 64, nf_part 64, BatchNorm, reflect padding).
Parameter names are the official ones (nn.Sequential indices included).

Inputs, all in [-1, 1]: image (3), captured background (3), soft segmentation (1), motion cue = 4 grey frames (4).
Outputs: alpha (Tanh, [-1, 1]) and foreground (no activation, [-1, 1] scale).

Official quirk kept: the "multi" branch is computed but unused; ``comb_multi`` is applied to the image + BACKGROUND
features. Its weights are loaded (strict) but, since its output cannot change the result, we skip computing it
(``compute_unused_multi=True`` runs it anyway).
"""
from __future__ import annotations

import torch
from torch import nn


def _enc(in_nc, ngf=64, n_down=2):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, padding=0, bias=True), nn.BatchNorm2d(ngf), nn.ReLU(True)]
    for i in range(n_down):
        m = 2 ** i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=True), nn.BatchNorm2d(ngf * m * 2),
                   nn.ReLU(True)]
    return layers


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), nn.BatchNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), nn.BatchNorm2d(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


def _up():
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)


class ResnetConditionHR(nn.Module):
    def __init__(self, input_nc=(3, 3, 1, 4), output_nc=4, ngf=64, nf_part=64, n_blocks1=7, n_blocks2=3):
        super().__init__()
        self.compute_unused_multi = False
        enc = _enc(input_nc[0], ngf)
        self.model_enc1 = nn.Sequential(*enc[:7])
        self.model_enc2 = nn.Sequential(*enc[7:])
        self.model_enc_back = nn.Sequential(*_enc(input_nc[1], ngf))
        self.model_enc_seg = nn.Sequential(*_enc(input_nc[2], ngf))
        self.model_enc_multi = nn.Sequential(*_enc(input_nc[3], ngf))
        mult = 4

        def comb():
            return nn.Sequential(nn.Conv2d(ngf * mult * 2, nf_part, 1, stride=1, padding=0, bias=False),
                                 nn.BatchNorm2d(ngf), nn.ReLU(True))

        self.comb_back = comb()
        self.comb_seg = comb()
        self.comb_multi = comb()
        dec = [nn.Conv2d(ngf * mult + 3 * nf_part, ngf * mult, 1, stride=1, padding=0, bias=False),
               nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
        dec += [ResnetBlock(ngf * mult) for _ in range(n_blocks1)]
        self.model_res_dec = nn.Sequential(*dec)
        self.model_res_dec_al = nn.Sequential(*[ResnetBlock(ngf * mult) for _ in range(n_blocks2)])
        self.model_res_dec_fg = nn.Sequential(*[ResnetBlock(ngf * mult) for _ in range(n_blocks2)])
        al = []
        for i in range(2):
            m = 2 ** (2 - i)
            al += [_up(), nn.Conv2d(ngf * m, ngf * m // 2, 3, stride=1, padding=1), nn.BatchNorm2d(ngf * m // 2),
                   nn.ReLU(True)]
        al += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7, padding=0), nn.Tanh()]
        self.model_al_out = nn.Sequential(*al)
        self.model_dec_fg1 = nn.Sequential(_up(), nn.Conv2d(ngf * 4, ngf * 2, 3, stride=1, padding=1),
                                           nn.BatchNorm2d(ngf * 2), nn.ReLU(True))
        self.model_fg_out = nn.Sequential(_up(), nn.Conv2d(ngf * 4, ngf, 3, stride=1, padding=1), nn.BatchNorm2d(ngf),
                                          nn.ReLU(True), nn.ReflectionPad2d(3),
                                          nn.Conv2d(ngf, output_nc - 1, 7, padding=0))

    def forward(self, image, back, seg, multi):
        img_feat1 = self.model_enc1(image)
        img_feat = self.model_enc2(img_feat1)
        back_feat = self.model_enc_back(back)
        seg_feat = self.model_enc_seg(seg)
        if self.compute_unused_multi:
            self.model_enc_multi(multi)  # official forward computes it and never uses it
        ib = torch.cat([img_feat, back_feat], dim=1)
        oth = torch.cat([self.comb_back(ib), self.comb_seg(torch.cat([img_feat, seg_feat], dim=1)),
                         self.comb_multi(ib)], dim=1)
        out_dec = self.model_res_dec(torch.cat([img_feat, oth], dim=1))
        al_out = self.model_al_out(self.model_res_dec_al(out_dec))
        out_dec_fg1 = self.model_dec_fg1(self.model_res_dec_fg(out_dec))
        fg_out = self.model_fg_out(torch.cat([out_dec_fg1, img_feat1], dim=1))
        return al_out, fg_out
