#!/usr/bin/env bash
# Installs the Debian packages agi-data needs, only those missing (idempotent).
# Quantum ESPRESSO (pw.x, pw2wannier90.x, ld1.x), Wannier90, OpenBLAS (pw.x is
# ~5x slower on the reference BLAS), Open MPI, LAMMPS (pair_style vashishta),
# graphviz (verdi node graph), chromium (the report page's browser test).
# slurm-wlm + munge: the one-node Slurm of scripts/slurm-cluster.sh (scheduler tests).
set -euo pipefail
packages=(quantum-espresso wannier90 libopenblas0-pthread openmpi-bin lammps graphviz chromium chromium-driver slurm-wlm munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "agi setup: installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "agi setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
