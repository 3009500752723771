"""The built workloads wheel the jobs install: located, hashed, named for a content-addressed upload.

(Not named wheel.py: with infra/ first on sys.path it would shadow the `wheel` distribution.)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from workloads.errors import MlopsError

DIST_NAME = "lakehouse_mlops"
WHEEL_ENV = "MLOPS_WHEEL"


class WheelNotFoundError(MlopsError):
    """No built wheel where the program looks for one."""


@dataclass(frozen=True)
class Wheel:
    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name

    def volume_path(self, catalog: str, schema: str, volume: str) -> str:
        """Content-addressed path in the artifacts volume: a new build gets a new path (and redeploys)."""
        return f"/Volumes/{catalog}/{schema}/{volume}/wheels/{self.sha256[:16]}/{self.filename}"


def project_root(start: Path | None = None) -> Path:
    """The directory holding ``Pulumi.yaml`` (the engine may run the program from the project or infra/)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents, Path(__file__).resolve().parents[1]):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    return Path(__file__).resolve().parents[1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate_wheel(configured: str | None = None, root: Path | None = None) -> Wheel:
    """The wheel to upload: ``configured`` (config ``wheel``), else ``$MLOPS_WHEEL``, else newest in dist/.

    Raises:
        WheelNotFoundError: saying how to build one.
    """
    explicit = configured or os.environ.get(WHEEL_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = (root or project_root()) / path
        if not path.is_file() or path.suffix != ".whl":
            raise WheelNotFoundError(f"wheel {path} does not exist or is not a .whl; run `uv build --wheel` "
                                     f"and point lakehouse-mlops:wheel or {WHEEL_ENV} at dist/{DIST_NAME}-*.whl")
        return Wheel(path=path, sha256=_sha256(path))
    dist = (root or project_root()) / "dist"
    wheels = sorted(dist.glob(f"{DIST_NAME}-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise WheelNotFoundError(f"no built wheel in {dist}; run `uv build --wheel` first "
                                 f"(the jobs install the workloads from it)")
    return Wheel(path=wheels[-1], sha256=_sha256(wheels[-1]))
