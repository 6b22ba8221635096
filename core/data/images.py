"""Image files decoded: whether one can be (`unreadable_reason`) and as RGB (`load_image`), naming the file it fails on."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from core.data.tables import DatasetError


def unreadable_reason(path: Path) -> str | None:
    """Why the image file cannot be decoded, or None when it can (JPEGs decoded at 1/8 scale: about 1 ms each).

    PIL's `verify()` passes a truncated JPEG, so the file is decoded instead."""
    try:
        with Image.open(path) as opened:
            opened.draft("RGB", (1, 1))  # no-op for formats other than JPEG
            opened.load()
    except FileNotFoundError:
        return "file does not exist"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return str(error)
    return None


def load_image(path: Path, draft_size: int | None = None) -> Image.Image:
    """One image file -> RGB PIL image (H, W, 3), EXIF-rotated, transparency composited onto white.

    `draft_size`: a JPEG may be decoded at a reduced scale no smaller than this (thumbnails: 5-10x faster)."""
    try:
        with Image.open(path) as opened:
            if draft_size:
                opened.draft("RGB", (draft_size, draft_size))
            opened.load()
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
            return image.convert("RGB")
    except FileNotFoundError as error:
        raise DatasetError(f"image file {path} does not exist; restore it or reload the dataset.") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read image {path} ({error}); replace the file with a valid image "
                           f"or remove it from the dataset.") from error
