#!/usr/bin/env bash
# `make demo`: seed a source, then validate, plan, apply, and plan again (nothing to do).
set -euo pipefail
cd "$(dirname "$0")"
regtopo=../../.venv/bin/regtopo
python=../../.venv/bin/python

rm -rf .state
$python seed.py .state/upstream

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step regtopo validate topology.yaml
$regtopo validate topology.yaml

step regtopo plan topology.yaml
$regtopo plan topology.yaml

step regtopo apply --auto-approve topology.yaml
$regtopo apply --auto-approve topology.yaml

step regtopo plan --detailed-exitcode topology.yaml
$regtopo plan --detailed-exitcode topology.yaml
