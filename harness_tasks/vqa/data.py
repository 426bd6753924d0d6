"""Japanese Visual Genome VQA (ja-vg-vqa): find, download, read and flatten `question_answers.json`.

Where the data comes from, in order: `vqa_path` (metadata), env `JA_VG_VQA`, else the GitHub zip,
downloaded once into the HF datasets cache. A download is written to a temporary file beside its
final name, checked (length, zip CRCs, expected member, optional sha256) and only then renamed into
place, so an interrupted or damaged download never becomes a cache entry that is later read as data.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import random
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from jinstruct.atomic import atomic_write

VQA_URL = "https://github.com/yahoojapan/ja-vg-vqa/raw/master/question_answers.json.zip"
MEMBER = "question_answers.json"
ENV_PATH = "JA_VG_VQA"
DEFAULT_SAMPLE_SEED = 1234
_CHUNK = 1 << 20


class VqaDataError(ValueError):
    """The VQA file is missing, damaged or not in the Visual Genome `question_answers.json` shape."""


@dataclass(frozen=True)
class VqaPair:
    row: int  # position among all flattened pairs of the file, 0-based, file order
    image_id: int
    qa_id: int
    question: str
    answer: str


@dataclass(frozen=True)
class VqaSource:
    path: Path
    origin: str  # "vqa_path", "env JA_VG_VQA" or the download URL
    sha256: str


def hf_cache_dir() -> Path:
    """The HF datasets cache folder, resolved from the environment now (as `datasets` does at import)."""
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home).expanduser() / "datasets"


def cached_zip_path(cache_dir: str | Path | None = None) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir else hf_cache_dir()
    return base / "jinstruct_ja_vg_vqa" / "question_answers.json.zip"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str) -> tuple[IO[bytes], int | None]:
    """Open `url` (https:// or file://) and return the stream and its announced length, if any."""
    response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - fixed URL or a user's own
    length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    return response, int(length) if length else None


def _zip_member(zf: zipfile.ZipFile, path: Path) -> str:
    names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == MEMBER]
    if not names:
        raise VqaDataError(
            f"{path}: the zip holds no {MEMBER} (members: {zf.namelist()[:5]}...). "
            f"Fix: point vqa_path at the ja-vg-vqa question_answers.json.zip or at the unzipped JSON."
        )
    return names[0]


def verify_zip(path: Path) -> None:
    """Raise VqaDataError unless `path` is a readable zip whose members pass their CRC checks."""
    try:
        with zipfile.ZipFile(path) as zf:
            _zip_member(zf, path)
            bad = zf.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
        raise VqaDataError(f"{path}: not a valid zip file ({e}).") from e
    if bad is not None:
        raise VqaDataError(f"{path}: member {bad} fails its CRC check (damaged zip).")


def download(url: str, dest: Path, expected_sha256: str | None = None) -> Path:
    """Download `url` to `dest` atomically: nothing exists at `dest` unless the whole file checked out."""
    from tqdm.auto import tqdm

    fix = (
        "Nothing was cached; rerun to retry, or download the file yourself and pass "
        '--metadata \'{"vqa_path": "/path/to/question_answers.json.zip"}\' (or set JA_VG_VQA).'
    )
    with atomic_write(dest) as tmp:
        h = hashlib.sha256()
        received = 0
        with tmp.open("wb") as out:
            try:
                stream, expected = fetch(url)
                with stream, tqdm(total=expected, unit="B", unit_scale=True, desc="ja-vg-vqa") as bar:
                    while chunk := stream.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                raise VqaDataError(f"could not download {url} ({e}). {fix}") from e
        if expected is not None and received != expected:
            raise VqaDataError(f"download of {url} truncated: got {received} of {expected} bytes. {fix}")
        try:
            verify_zip(tmp)
        except VqaDataError as e:
            raise VqaDataError(f"download of {url} is damaged: {e} {fix}") from e
        if expected_sha256 and h.hexdigest() != expected_sha256.lower():
            raise VqaDataError(
                f"download of {url} has sha256 {h.hexdigest()}, expected {expected_sha256}. {fix}"
            )
    return dest


def resolve_source(
    vqa_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    url: str = VQA_URL,
    expected_sha256: str | None = None,
) -> VqaSource:
    """Pick the data file: `vqa_path`, else env JA_VG_VQA, else the cached (or freshly fetched) zip."""
    for value, origin in ((vqa_path, "vqa_path"), (os.environ.get(ENV_PATH), f"env {ENV_PATH}")):
        if not value:
            continue
        path = Path(value).expanduser().resolve()
        if path.is_dir():
            found = [path / MEMBER, path / (MEMBER + ".zip")]
            path = next((p for p in found if p.is_file()), found[0])
        if not path.is_file():
            raise VqaDataError(
                f"{origin} points at {path}, which does not exist. Fix: give the path of "
                f"question_answers.json or question_answers.json.zip (ja-vg-vqa)."
            )
        return VqaSource(path=path, origin=origin, sha256=sha256_of(path))
    dest = cached_zip_path(cache_dir)
    if not dest.is_file():
        download(url, dest, expected_sha256)
    return VqaSource(path=dest, origin=url, sha256=sha256_of(dest))


def _open_text(path: Path):
    """The JSON text of `path` as a stream (a zip's member is decompressed as it is read)."""
    if zipfile.is_zipfile(path) or path.suffix == ".zip":
        zf = zipfile.ZipFile(path)
        return io.TextIOWrapper(zf.open(_zip_member(zf, path)), encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _iter_json_list(path: Path) -> Iterator[Any]:
    """The elements of the file's top-level JSON list, one at a time, reading ~1 MB at a time.

    ja-vg-vqa is one JSON list of ~100k images; parsing it whole holds every pair as Python objects
    at once. Here only the current buffer and element are alive."""
    decoder = json.JSONDecoder()
    try:
        with _open_text(path) as f:
            buf, pos, eof = "", 0, False

            def more() -> bool:
                nonlocal buf, pos, eof
                chunk = f.read(_CHUNK)
                eof = not chunk
                buf, pos = buf[pos:] + chunk, 0
                return not eof

            def skip_space() -> str:
                nonlocal pos
                while True:
                    while pos < len(buf) and buf[pos].isspace():
                        pos += 1
                    if pos < len(buf) or not more():
                        return buf[pos] if pos < len(buf) else ""

            if skip_space() != "[":
                rest = buf[pos:] + f.read()
                kind = type(json.loads(rest)).__name__ if rest.strip() else "nothing"
                raise VqaDataError(
                    f"{path}: expected a JSON list of images (Visual Genome question_answers.json), got {kind}."
                )
            pos += 1
            if skip_space() == "]":
                return
            while True:
                skip_space()
                while True:
                    try:
                        value, end = decoder.raw_decode(buf, pos)
                        break
                    except json.JSONDecodeError:
                        if not more():  # the element really is malformed (or the file is cut short)
                            raise
                pos = end
                yield value
                sep = skip_space()
                if sep == "]":
                    return
                if sep != ",":
                    raise json.JSONDecodeError("expected ',' or ']' between list elements", buf, pos)
                pos += 1
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise VqaDataError(
            f"{path}: not a valid zip file ({e}). Fix: delete it and download it again, or unzip a good "
            f"copy and pass the JSON as vqa_path."
        ) from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VqaDataError(f"{path}: not valid UTF-8 JSON ({e}). Fix: re-download the file.") from e


def _check_text(value: Any, path: Path, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise VqaDataError(
            f"{path}: {where} has {field}={value!r}, not a string. Fix: correct or remove that qas item."
        )
    return value


def _as_int(value: Any) -> int:
    # Ids are carried for the logged samples only; a missing or odd id must not stop scoring.
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def iter_pairs(path: Path) -> Iterator[VqaPair]:
    """Every `qas` item of every image, in file order (no dedup, no filtering), as the paper does;
    streamed from the file."""
    row = 0
    for i, image in enumerate(_iter_json_list(path)):
        qas = image.get("qas") if isinstance(image, dict) else None
        if not isinstance(qas, list):
            raise VqaDataError(
                f"{path}: image #{i} has no 'qas' list. Fix: each element must look like "
                f'{{"id": ..., "qas": [{{"question": ..., "answer": ..., "image_id": ...}}]}}.'
            )
        for j, qa in enumerate(qas):
            where = f"image #{i} qas[{j}]"
            if not isinstance(qa, dict):
                raise VqaDataError(f"{path}: {where} is not an object. Fix: correct that qas item.")
            yield VqaPair(
                row=row,
                image_id=_as_int(qa.get("image_id", image.get("id", image.get("image_id")))),
                qa_id=_as_int(qa.get("qa_id")),
                question=_check_text(qa.get("question"), path, where, "question"),
                answer=_check_text(qa.get("answer"), path, where, "answer"),
            )
            row += 1
    if row == 0:
        raise VqaDataError(f"{path}: holds no question/answer pairs.")


@lru_cache(maxsize=8)
def count_pairs(path: str, sha256: str) -> int:
    """How many pairs the file holds (one streaming pass, remembered per file content)."""
    return sum(1 for _ in iter_pairs(Path(path)))


def load_pairs(source: VqaSource) -> list[VqaPair]:
    """All flattened pairs of the file, as a list (small files, tests; the task streams instead)."""
    return list(iter_pairs(source.path))


def sample_rows(n_pairs: int, n: int | None, seed: int = DEFAULT_SAMPLE_SEED) -> list[int] | None:
    """The sorted rows of a deterministic sample of `n` of `n_pairs` pairs; None means all of them."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise VqaDataError(f"vqa_sample must be a positive integer, got {n!r}.")
    if n >= n_pairs:
        return None
    return sorted(random.Random(seed).sample(range(n_pairs), n))


def subsample(pairs: list[VqaPair], n: int | None, seed: int = DEFAULT_SAMPLE_SEED) -> list[VqaPair]:
    """A deterministic subset of `n` pairs, kept in file order; all pairs when `n` is None or too big."""
    keep = sample_rows(len(pairs), n, seed)
    return pairs if keep is None else [pairs[i] for i in keep]
