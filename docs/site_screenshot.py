"""Regenerate docs/site-index.png, the README's picture of the leaderboard site: the published site's
index in headless Chromium (tests/chromium.py), its first table sorted by accuracy, 256 colours.

    amst-bench publish --site site/ && python docs/site_screenshot.py site/ docs/site-index.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chromium import Browser, find_chromium  # noqa: E402


def main(site: Path, out: Path) -> None:
    executable = find_chromium()
    if executable is None:
        sys.exit("no chromium here (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(executable, Path(profile), width=1400, height=860)
        try:
            browser.open((site / "index.html").resolve().as_uri())
            browser.click("table.board th[data-key='accuracy'] button")
            browser.js("window.scrollTo(0, 0)")
            browser.screenshot(out)
        finally:
            browser.close()
    Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)
    print(f"{out}: {out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
