"""The curated encoders offered in the sidebar: the four training paradigms of the THINGS alignment study, plus controls.

arXiv 2505.16419 compared 27 DNNs across supervised, self-supervised, self-supervised then supervised
fine-tuning, and CLIP (language-supervised) training; this catalogue spans the same four paradigms with
well-known public checkpoints, and adds untrained twins and raw pixels as controls. Any other timm /
open_clip model is one spec away (`core.encoders.specs`). `params_m` counts the image tower's parameters
(millions, classifier head included for timm); `download_mb` is the checkpoint the hub serves (float32,
both towers for CLIP). tests/core/encoders/test_catalogue.py checks both against the architectures.
"""
from __future__ import annotations

from dataclasses import dataclass

SUPERVISED, SELF_SUPERVISED, SSL_FINE_TUNED, CLIP, CONTROL = (
    "supervised", "self-supervised", "self-supervised + fine-tuned", "CLIP", "control")
PARADIGMS = (SUPERVISED, SELF_SUPERVISED, SSL_FINE_TUNED, CLIP, CONTROL)
PARADIGM_HELP = {
    SUPERVISED: "class labels (ImageNet-1k / 21k)",
    SELF_SUPERVISED: "images only: self-distillation (DINO, DINOv2) or masked image modelling (MAE, EVA-02)",
    SSL_FINE_TUNED: "self- or semi-supervised pretraining, then supervised ImageNet fine-tuning",
    CLIP: "contrastive image-text pairs (language supervision)",
    CONTROL: "untrained (random-init) twins and raw pixels: what architecture alone gives",
}


@dataclass(frozen=True)
class CatalogueEntry:
    """One curated encoder: its spec and what a user needs to choose it."""

    spec: str
    label: str
    paradigm: str  # one of PARADIGMS
    training_data: str
    params_m: float  # image-tower parameters, millions
    download_mb: int = 0  # checkpoint size on the hub, MB (0: nothing to download)


CATALOGUE: tuple[CatalogueEntry, ...] = (
    # supervised
    CatalogueEntry("bundled:efficientnet_lite0", "EfficientNet-Lite0, ImageNet-1k (bundled)", SUPERVISED, "ImageNet-1k", 4.7),
    CatalogueEntry("timm:resnet50.tv_in1k", "ResNet-50, ImageNet-1k (torchvision)", SUPERVISED, "ImageNet-1k", 25.6, 102),
    CatalogueEntry("timm:resnet50.a1_in1k", "ResNet-50, ImageNet-1k (A1 recipe)", SUPERVISED, "ImageNet-1k", 25.6, 102),
    CatalogueEntry("timm:deit_tiny_patch16_224.fb_in1k", "DeiT-Ti/16, ImageNet-1k", SUPERVISED, "ImageNet-1k", 5.7, 23),
    CatalogueEntry("timm:deit_base_patch16_224.fb_in1k", "DeiT-B/16, ImageNet-1k", SUPERVISED, "ImageNet-1k", 86.6, 346),
    CatalogueEntry("timm:vit_base_patch16_224.augreg_in1k", "ViT-B/16, ImageNet-1k (AugReg)", SUPERVISED, "ImageNet-1k",
           86.6, 346),
    CatalogueEntry("timm:vit_base_patch16_224.augreg_in21k", "ViT-B/16, ImageNet-21k (AugReg)", SUPERVISED, "ImageNet-21k",
           102.6, 410),
    CatalogueEntry("timm:vit_base_patch16_224.augreg_in21k_ft_in1k", "ViT-B/16, ImageNet-21k → 1k (AugReg)", SUPERVISED,
           "ImageNet-21k, then ImageNet-1k", 86.6, 346),
    CatalogueEntry("timm:convnext_base.fb_in1k", "ConvNeXt-B, ImageNet-1k", SUPERVISED, "ImageNet-1k", 88.6, 354),
    CatalogueEntry("timm:convnext_base.fb_in22k", "ConvNeXt-B, ImageNet-22k", SUPERVISED, "ImageNet-22k", 110.0, 440),
    CatalogueEntry("timm:swin_base_patch4_window7_224.ms_in22k", "Swin-B, ImageNet-22k", SUPERVISED, "ImageNet-22k",
           109.1, 437),
    # self-supervised
    CatalogueEntry("timm:vit_small_patch16_224.dino", "DINO ViT-S/16", SELF_SUPERVISED, "ImageNet-1k (no labels)", 21.7, 87),
    CatalogueEntry("timm:vit_base_patch16_224.dino", "DINO ViT-B/16", SELF_SUPERVISED, "ImageNet-1k (no labels)", 85.8, 343),
    CatalogueEntry("timm:vit_small_patch14_dinov2.lvd142m", "DINOv2 ViT-S/14", SELF_SUPERVISED, "LVD-142M (no labels)",
           22.1, 88),
    CatalogueEntry("timm:vit_base_patch14_dinov2.lvd142m", "DINOv2 ViT-B/14", SELF_SUPERVISED, "LVD-142M (no labels)",
           86.6, 346),
    CatalogueEntry("timm:vit_large_patch14_dinov2.lvd142m", "DINOv2 ViT-L/14", SELF_SUPERVISED, "LVD-142M (no labels)",
           304.4, 1217),
    CatalogueEntry("timm:vit_base_patch16_224.mae", "MAE ViT-B/16", SELF_SUPERVISED, "ImageNet-1k (no labels)", 85.8, 343),
    CatalogueEntry("timm:vit_large_patch16_224.mae", "MAE ViT-L/16", SELF_SUPERVISED, "ImageNet-1k (no labels)", 303.3, 1213),
    CatalogueEntry("timm:eva02_tiny_patch14_224.mim_in22k", "EVA-02 Ti/14, masked image modelling", SELF_SUPERVISED,
           "ImageNet-22k (no labels; EVA-CLIP targets)", 5.5, 22),
    # self-supervised, then supervised fine-tuning
    CatalogueEntry("timm:beit_base_patch16_224.in22k_ft_in22k_in1k", "BEiT-B/16, fine-tuned", SSL_FINE_TUNED,
           "ImageNet-22k MIM, then ImageNet-22k → 1k labels", 86.5, 346),
    CatalogueEntry("timm:beitv2_base_patch16_224.in1k_ft_in1k", "BEiT v2-B/16, fine-tuned", SSL_FINE_TUNED,
           "ImageNet-1k MIM, then ImageNet-1k labels", 86.5, 346),
    CatalogueEntry("timm:resnet18.fb_ssl_yfcc100m_ft_in1k", "ResNet-18, semi-supervised (SSL), fine-tuned", SSL_FINE_TUNED,
           "YFCC-100M pseudo-labels, then ImageNet-1k", 11.7, 47),
    CatalogueEntry("timm:resnet50.fb_ssl_yfcc100m_ft_in1k", "ResNet-50, semi-supervised (SSL), fine-tuned", SSL_FINE_TUNED,
           "YFCC-100M pseudo-labels, then ImageNet-1k", 25.6, 102),
    CatalogueEntry("timm:resnet50.fb_swsl_ig1b_ft_in1k", "ResNet-50, semi-weakly supervised (SWSL), fine-tuned",
           SSL_FINE_TUNED, "Instagram-1B hashtags, then ImageNet-1k", 25.6, 102),
    # CLIP (language-supervised)
    CatalogueEntry("open_clip:RN50@openai", "CLIP ResNet-50, OpenAI", CLIP, "WIT-400M image-text pairs", 38.3, 408),
    CatalogueEntry("timm:resnet50_clip.openai", "CLIP ResNet-50 image tower, OpenAI (timm)", CLIP,
           "WIT-400M image-text pairs", 38.3, 153),
    CatalogueEntry("open_clip:ViT-B-32@openai", "CLIP ViT-B/32, OpenAI", CLIP, "WIT-400M image-text pairs", 87.8, 605),
    CatalogueEntry("open_clip:ViT-B-16@openai", "CLIP ViT-B/16, OpenAI", CLIP, "WIT-400M image-text pairs", 86.2, 598),
    CatalogueEntry("open_clip:ViT-B-16@laion2b_s34b_b88k", "CLIP ViT-B/16, LAION-2B", CLIP, "LAION-2B image-text pairs",
           86.2, 598),
    CatalogueEntry("open_clip:ViT-B-16@datacomp_xl_s13b_b90k", "CLIP ViT-B/16, DataComp-1B", CLIP,
           "DataComp-1B image-text pairs", 86.2, 598),
    CatalogueEntry("open_clip:ViT-L-14@openai", "CLIP ViT-L/14, OpenAI", CLIP, "WIT-400M image-text pairs", 304.0, 1710),
    CatalogueEntry("open_clip:ViT-B-16-SigLIP@webli", "SigLIP ViT-B/16, WebLI (final embedding only)", CLIP,
           "WebLI image-text pairs (sigmoid loss)", 92.9, 813),
    # controls
    CatalogueEntry("untrained:timm:vit_base_patch16_224", "ViT-B/16, untrained", CONTROL, "none (random init, seed 0)", 86.6),
    CatalogueEntry("untrained:open_clip:ViT-B-16", "CLIP ViT-B/16 image tower, untrained", CONTROL,
           "none (random init, seed 0)", 86.2),
    CatalogueEntry("untrained:timm:resnet50", "ResNet-50, untrained", CONTROL, "none (random init, seed 0)", 25.6),
    CatalogueEntry("untrained:timm:efficientnet_lite0", "EfficientNet-Lite0, untrained", CONTROL,
           "none (random init, seed 0)", 4.7),
    CatalogueEntry("pixels:32", "Raw pixels 32x32", CONTROL, "none", 0.0),
)
CATALOGUE_BY_SPEC = {entry.spec: entry for entry in CATALOGUE}


def entries_of(paradigms: tuple[str, ...] | list[str]) -> tuple[CatalogueEntry, ...]:
    """The catalogue entries of the given paradigms, in catalogue order."""
    unknown = [name for name in paradigms if name not in PARADIGMS]
    if unknown:
        raise ValueError(f"Unknown paradigm {unknown[0]!r}; paradigms: {', '.join(PARADIGMS)}.")
    return tuple(entry for entry in CATALOGUE if entry.paradigm in paradigms)
