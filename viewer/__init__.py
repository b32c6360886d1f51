"""An Open3D viewer for meshes, point clouds and neural_sdf model files (``python -m viewer PATH...``).

It uses only the public ``neural_sdf`` API; ``neural_sdf`` never imports it.
"""

__all__ = ["main"]


def main(argv=None) -> int:
    """Run the viewer with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    from .app import main as _main

    return _main(argv)
