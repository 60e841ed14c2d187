"""Recipe text shared by the benchmarks that train one open_clip architecture through the zoo."""
from __future__ import annotations

# both towers of one open_clip model (image and text, no extra projection): what open_clip itself trains
OPEN_CLIP_MODEL = """
[model]
embed_dim = {embed}
[model.towers.image]
modality = "image"
encoder = "open_clip:{arch}"
projection = "none"
[model.towers.text]
modality = "text"
encoder = "open_clip:{arch}"
projection = "none"
"""
