"""Where the benchmark scripts find the shared data: ``../shared/data`` next to the repository.

The meshes, the real scan and the video clip there are never copied into the repository (see the
README's "Data" section); scripts that need them stop with a clear message when the folder is absent.
"""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAPES_DIR = SHARED_DATA / "shapes"
VIDEO_DIR = SHARED_DATA / "video"
