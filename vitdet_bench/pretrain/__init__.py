"""Pre-training: MAE, MoCo v3, BEiT, supervised (DeiT), feature-reconstruction MIM, MAE-Lite, ConvMAE, FastConvMAE.

Each method is a :class:`PretrainModel` over one backbone interface (BEiT with a pluggable tokenizer,
feature-reconstruction MIM with a frozen teacher, as EVA with a CLIP one, MAE-Lite with attention
distillation, ConvMAE / FastConvMAE on the hybrid ConvViT) that states its facts as class attributes
(:data:`PRETRAIN_METHODS`) and exports a backbone the detector loads with nothing missing. Configs:
``projects/<Method>/configs``."""

from .beit import BEiT
from .common import PRETRAIN_METHODS, PretrainModel, method_label
from .convmae import ConvMAE, ConvMAEEncoder, build_convmae_encoder
from .data import (
    PretrainMapper,
    beit_transform,
    build_pretrain_train_loader,
    deit_transform,
    demo_pool_dataset,
    detection_image_dataset,
    image_folder_dataset,
    mae_transform,
    moco_transforms,
    tokenizer_transform,
)
from .encoder import PretrainEncoder, build_pretrain_encoder, sincos_pos_embed
from .fastconvmae import FastConvMAE, complementary_views
from .feature_mim import FeatureMIM, negative_cosine_loss
from .mae import MAE, mae_loss, patchify
from .maelite import MAELite, attention_distill_loss
from .masking import BlockMaskGenerator, random_masking
from .moco import MoCoV3, contrastive_loss, momentum_at
from .supervised import SupervisedViT
from .teacher import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, TeacherOutput, ViTTeacher, build_teacher, openclip_visual_to_timm
from .tokenizers import DalleTokenizer, VQTokenizer, build_tokenizer, save_tokenizer

__all__ = [
    "BEiT",
    "BlockMaskGenerator",
    "CLIP_PIXEL_MEAN",
    "CLIP_PIXEL_STD",
    "ConvMAE",
    "ConvMAEEncoder",
    "DalleTokenizer",
    "FastConvMAE",
    "FeatureMIM",
    "MAE",
    "MAELite",
    "MoCoV3",
    "PRETRAIN_METHODS",
    "PretrainEncoder",
    "PretrainMapper",
    "PretrainModel",
    "SupervisedViT",
    "TeacherOutput",
    "VQTokenizer",
    "ViTTeacher",
    "attention_distill_loss",
    "beit_transform",
    "build_convmae_encoder",
    "build_pretrain_encoder",
    "build_pretrain_train_loader",
    "build_teacher",
    "build_tokenizer",
    "complementary_views",
    "contrastive_loss",
    "deit_transform",
    "demo_pool_dataset",
    "detection_image_dataset",
    "image_folder_dataset",
    "mae_loss",
    "mae_transform",
    "method_label",
    "moco_transforms",
    "momentum_at",
    "negative_cosine_loss",
    "openclip_visual_to_timm",
    "patchify",
    "random_masking",
    "save_tokenizer",
    "sincos_pos_embed",
    "tokenizer_transform",
]
