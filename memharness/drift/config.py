"""Schema of `memharness diverge` config files (YAML, unknown keys are errors).

```yaml
inputs:                     # exactly one of texts / token_ids / random
  random: {count: 4, length: 32, seed: 0}
a: {model: "tiny:llama", model_class: causal-lm, dtype: bfloat16, dtype_mode: load}
b: {dtype_mode: to}         # b starts from a's settings; name only what differs
rtol: 1.0e-5
atol: 1.0e-8
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from memharness.errors import MemharnessError


class ConfigError(MemharnessError):
    """An invalid config file; `str()` is one `FILE: field.path: message` line per error."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RandomInputs(_Strict):
    count: int = Field(4, ge=1, description="number of sequences")
    length: int = Field(32, ge=1, description="tokens per sequence")
    seed: int = 0
    vocab_size: int | None = Field(None, ge=2, description="default: the model's config.json vocab_size")
    low: int = Field(0, ge=0, description="smallest token id drawn (skip special ids)")


class Inputs(_Strict):
    texts: list[str] | None = None
    token_ids: list[list[int]] | None = None
    random: RandomInputs | None = None
    tokenizer: str | None = Field(None, description="for texts; default: variant a's model folder")
    max_length: int = Field(128, ge=1, description="texts are truncated to this many tokens")
    pad_id: int = Field(0, ge=0, description="pads token_ids lists of unequal length")

    @model_validator(mode="after")
    def _one_source(self) -> Inputs:
        given = [k for k in ("texts", "token_ids", "random") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of texts, token_ids, random (got {given or 'none'})")
        if self.texts is not None and not self.texts:
            raise ValueError("texts is empty")
        if self.token_ids is not None and (not self.token_ids or not all(self.token_ids)):
            raise ValueError("token_ids must be a non-empty list of non-empty lists")
        return self


DType = Literal["float32", "bfloat16", "float16"]


class Variant(_Strict):
    label: str | None = None
    model: str = Field(description="local model folder, or tiny:llama / tiny:bert (built offline once)")
    model_class: Literal["auto", "causal-lm", "masked-lm"] = Field(
        "auto", description="auto = AutoModel (base model), causal-lm = AutoModelForCausalLM, ..."
    )
    dtype: DType = "float32"
    dtype_mode: Literal["load", "to"] = Field(
        "load", description="load = from_pretrained(dtype=...), to = from_pretrained() then .to(dtype)"
    )
    autocast: bool = False
    autocast_dtype: Literal["bfloat16", "float16"] | None = Field(
        None, description="default: bfloat16 on cpu, float16 on cuda"
    )
    batch_size: int = Field(8, ge=1)
    device: Literal["cpu", "cuda"] = "cpu"


class DivergeConfig(_Strict):
    inputs: Inputs
    a: Variant
    b: Variant
    rtol: float = Field(1e-5, ge=0)
    atol: float = Field(1e-8, ge=0)
    modules: list[str] = Field(default_factory=lambda: ["*"], description="fnmatch patterns of module names to hook")
    max_capture_mb: float = Field(2048, gt=0, description="stop when the captured outputs of one variant exceed this")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    out.pop("label", None)
    out.update(over)
    return out


def parse(data: Any, source: str = "<config>") -> DivergeConfig:
    """Validate a loaded YAML document; variant b inherits every setting it does not name from a."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    data = dict(data)
    if isinstance(data.get("a"), dict) and isinstance(data.get("b"), dict):
        data["b"] = _merge(data["a"], data["b"])
    try:
        return DivergeConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"{source}: {loc}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def load(path: Path) -> DivergeConfig:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse(data, str(path))
