#!/usr/bin/env python3
"""Assembles the web page: index.html and app.js from web/page/, plus assets.js
holding the WebAssembly module and the default policy blob as base64 (so the
page also works opened straight from disk, where browsers refuse fetch()).

usage: bundle.py MODULE.wasm POLICY.bin OUT_DIR
"""
import base64
import json
import shutil
import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    wasm, blob, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    page = Path(__file__).resolve().parent / "page"
    for name in ("index.html", "app.js"):
        shutil.copyfile(page / name, out / name)
    assets = (
        "// Written by web/bundle.py (make web); do not edit.\n"
        f"const FLAPPY_WASM = {json.dumps(base64.b64encode(wasm.read_bytes()).decode())};\n"
        f"const FLAPPY_BLOB = {json.dumps(base64.b64encode(blob.read_bytes()).decode())};\n"
        f"const FLAPPY_BLOB_NAME = {json.dumps(blob.name)};\n"
    )
    tmp = out / "assets.js.tmp"
    tmp.write_text(assets)
    tmp.replace(out / "assets.js")
    print(f"web: {out}/index.html ({wasm.stat().st_size} B module, {blob.stat().st_size} B blob)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
