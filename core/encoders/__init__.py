"""Encoders by spec string: `specs` (grammar, catalogue), `registry` (describe, load, availability), `backbones` (timm / open_clip adapters)."""
