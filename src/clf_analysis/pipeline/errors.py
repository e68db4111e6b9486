"""The one exception type a failed analysis run raises."""

from __future__ import annotations


class AnalysisError(Exception):
    """An analysis run failed; says at which stage, in which file and at which layer."""

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        file: str | None = None,
        layer: float | None = None,
        kind: str = "analysis_failed",
    ) -> None:
        where = [f"stage {stage}"]
        if file is not None:
            where.append(f"file {file}")
        if layer is not None:
            where.append(f"layer z={layer:.4f} mm")
        super().__init__(f"{message} ({', '.join(where)})")
        self.detail = message
        self.stage = stage
        self.file = file
        self.layer = layer
        self.kind = kind

    def __reduce__(self) -> tuple[object, ...]:
        # Pool processes pickle exceptions; the default would lose the keyword fields.
        return (_rebuild, (type(self), self.detail, self.stage, self.file, self.layer, self.kind))

    def to_problem(self) -> dict[str, object]:
        """JSON-ready description stored with a failed job."""
        return {
            "type": self.kind,
            "message": str(self),
            "detail": self.detail,
            "stage": self.stage,
            "file": self.file,
            "layer": self.layer,
        }


def _rebuild(
    cls: type[AnalysisError],
    detail: str,
    stage: str,
    file: str | None,
    layer: float | None,
    kind: str,
) -> AnalysisError:
    return cls(detail, stage=stage, file=file, layer=layer, kind=kind)


class AnalysisCancelled(Exception):
    """The run was asked to stop; nothing was published."""


class BuildLocked(AnalysisError):
    """Another process holds the build's output lock longer than we are willing to wait."""
