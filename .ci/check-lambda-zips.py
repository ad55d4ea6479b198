"""Checks that each dist/lambda/<function>/bootstrap.zip holds a Linux ELF executable named
`bootstrap` for the expected architecture, and prints each zip's size."""

import struct
import sys
import zipfile
from pathlib import Path

MACHINES = {"arm64": 0xB7, "x86_64": 0x3E}  # ELF e_machine: EM_AARCH64, EM_X86_64


def check(zip_path: Path, arch: str) -> str:
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo("bootstrap")
        header = archive.read("bootstrap")[:20]
    if header[:4] != b"\x7fELF":
        raise SystemExit(f"{zip_path}: bootstrap is not an ELF executable")
    if header[4] != 2 or header[7] not in (0, 3):
        raise SystemExit(f"{zip_path}: bootstrap is not a 64-bit Linux executable")
    (e_type, e_machine) = struct.unpack("<HH", header[16:20])
    if e_type not in (2, 3):  # ET_EXEC or ET_DYN (position-independent executable)
        raise SystemExit(f"{zip_path}: bootstrap is not an executable (e_type {e_type})")
    if e_machine != MACHINES[arch]:
        raise SystemExit(f"{zip_path}: bootstrap is built for e_machine {e_machine:#x}, expected {arch}")
    if not (info.external_attr >> 16) & 0o111:
        raise SystemExit(f"{zip_path}: bootstrap is not marked executable")
    return f"{zip_path}: {zip_path.stat().st_size / 1e6:.2f} MB, bootstrap {arch} Linux executable"


def main() -> None:
    arch, dist = sys.argv[1], Path(sys.argv[2])
    functions = sorted(p.parent.name for p in Path("functions").glob("*/Cargo.toml"))
    if not functions:
        raise SystemExit("no crates under functions/")
    for function in functions:
        zip_path = dist / function / "bootstrap.zip"
        if not zip_path.exists():
            raise SystemExit(f"{zip_path} is missing: run scripts/build-lambdas")
        print(check(zip_path, arch))


if __name__ == "__main__":
    main()
