#!/bin/sh
# Stand-in for the FSC/RLIE scientific processing chain, for tests and the demo.
#
# It reads the staged inputs under $SWATH_WORK/inputs, then writes one product directory per output
# kind under $SWATH_WORK/outputs/<kind>/<product id>/ holding a small raster (PGM), a quicklook (PNG)
# and the metadata file dias_catalog_submit.json, which also lists the names of the staged inputs
# (`inputProducts`, sorted: every entry directly under inputs/). POSIX sh only: it runs inside the
# stand-in image (busybox) and as a plain process on a host (coreutils), where SWATH_WORK is the
# real work dir.
#
# Product ids are <KIND>_<sensing>_<mission>_T<tile>_<baseline>_<flag>, from the first Sentinel-2
# L1C input (or else the first FSC/RLIE input). Without either, they are
# <KIND>_<first input>_<baseline>_<flag>, the first input's name without `.SAFE` (characters outside
# A-Za-z0-9_-. dropped, cut so that the id is at most 200 bytes), so that unrelated inputs do not
# all make one product.
#
# Parameters come from the environment, overridden by KEY=value lines of the file named by the first
# argument, or else of the first input's `standin.params`, if any:
#   STANDIN_EXIT      exit code to end with (default 0): 0 success, 200..207 no product,
#                     1..99 internal error, 100..199 external error; products are written only on 0
#   STANDIN_SLEEP     seconds of "processing" before the outputs are written (default 0)
#   STANDIN_ALLOC_MB  MiB of memory to really allocate (resident) while processing (default 0)
#   STANDIN_PRODUCTS  output kinds to write (default "fsc rlie l2a"; also quicklook, check, or any
#                     other; the worker uploads the kinds of its task and ignores the others). An
#                     `l2a` product is named after the L1C input, the first by name when a split
#                     datatake gives several (the next date of the tile's time series reads it);
#                     a kind other than fsc, rlie, l2a, quicklook and check is named after a
#                     checksum of the first input's name (`<KIND>_<md5>_<baseline>_<flag>`): one
#                     product per input.
#   STANDIN_TILE      tile used when no Sentinel-2 product name is found in the inputs (default 34VEM)
#   STANDIN_BASELINE  product baseline in product ids and `processingBaseline` (default V100;
#                     V and three digits)
#   STANDIN_FLAG      quality flag, the last field of product ids (default 1 nominal, 0 degraded;
#                     one digit)
#   STANDIN_ATTACK    misbehaviour, for the worker's trust-boundary tests (default none):
#                     symlink:<target>   each product also holds `stolen.txt`, a symbolic link to <target>
#                     hardlink:<target>  each product also holds `linked.txt`, a hard link to <target>
#                     badname            each product also holds a directory named `..\escaped`
#                     fill:<MiB>         writes <MiB> MiB to outputs/fill.bin before processing
set -u
# Byte order for sorting and character ranges, whatever the host's locale: the first input by name
# is the first in byte order, as the orchestrator compares names.
LC_ALL=C
export LC_ALL

WORK="${SWATH_WORK:-/work}"
INPUTS="$WORK/inputs"
OUTPUTS="$WORK/outputs"
STANDIN_EXIT="${STANDIN_EXIT:-0}"
STANDIN_SLEEP="${STANDIN_SLEEP:-0}"
STANDIN_ALLOC_MB="${STANDIN_ALLOC_MB:-0}"
STANDIN_PRODUCTS="${STANDIN_PRODUCTS:-fsc rlie l2a}"
STANDIN_TILE="${STANDIN_TILE:-34VEM}"
STANDIN_BASELINE="${STANDIN_BASELINE:-V100}"
STANDIN_FLAG="${STANDIN_FLAG:-1}"
STANDIN_ATTACK="${STANDIN_ATTACK:-}"

log() { printf '%s standin: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
warn() { printf '%s standin: warning: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
fail() {
  code=$1
  shift
  printf '%s standin: error: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
  exit "$code"
}
is_number() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac }

# Without an argument, a `standin.params` file shipped with an input product is read (tests and
# the demo drive the stand-in through their sample inputs this way).
if [ $# -eq 0 ]; then
  for candidate in "$INPUTS"/*/standin.params; do
    [ -r "$candidate" ] && set -- "$candidate" && break
  done
fi
if [ $# -ge 1 ]; then
  [ -r "$1" ] || fail 11 "parameter file $1 is not readable"
  while IFS='=' read -r key value || [ -n "$key" ]; do
    case "$key" in
      STANDIN_EXIT) STANDIN_EXIT=$value ;;
      STANDIN_SLEEP) STANDIN_SLEEP=$value ;;
      STANDIN_ALLOC_MB) STANDIN_ALLOC_MB=$value ;;
      STANDIN_PRODUCTS) STANDIN_PRODUCTS=$value ;;
      STANDIN_TILE) STANDIN_TILE=$value ;;
      STANDIN_BASELINE) STANDIN_BASELINE=$value ;;
      STANDIN_FLAG) STANDIN_FLAG=$value ;;
      STANDIN_ATTACK) STANDIN_ATTACK=$value ;;
      '' | '#'*) ;;
      *) fail 12 "unknown parameter $key in $1" ;;
    esac
  done <"$1"
fi
for number in "$STANDIN_EXIT" "$STANDIN_SLEEP" "$STANDIN_ALLOC_MB"; do
  is_number "$number" || fail 13 "parameter value $number is not a whole number"
done
case "$STANDIN_BASELINE" in
  V[0-9][0-9][0-9]) ;;
  *) fail 13 "STANDIN_BASELINE $STANDIN_BASELINE is not V and three digits (e.g. V100)" ;;
esac
case "$STANDIN_FLAG" in
  [0-9]) ;;
  *) fail 13 "STANDIN_FLAG $STANDIN_FLAG is not one digit" ;;
esac
case "$STANDIN_ATTACK" in
  '' | symlink:?* | hardlink:?* | badname) ;;
  fill:*) is_number "${STANDIN_ATTACK#fill:}" || fail 13 "STANDIN_ATTACK $STANDIN_ATTACK: not a whole number of MiB" ;;
  *) fail 13 "unknown STANDIN_ATTACK $STANDIN_ATTACK (symlink:<target>, hardlink:<target>, badname, fill:<MiB>)" ;;
esac

log "starting in $WORK (exit=$STANDIN_EXIT sleep=$STANDIN_SLEEP alloc_mb=$STANDIN_ALLOC_MB products=$STANDIN_PRODUCTS baseline=$STANDIN_BASELINE flag=$STANDIN_FLAG)"

# Read every input: the listing and a checksum of each file go to the log, and the checksum of all
# of them seeds the "measurements" written below.
[ -d "$INPUTS" ] || fail 10 "no input directory $INPUTS"
list=$(find "$INPUTS" -type f | sort)
[ -n "$list" ] || fail 10 "no input file under $INPUTS"
count=0
total=0
while IFS= read -r file; do
  size=$(wc -c <"$file")
  size=$((size + 0))
  md5=$(md5sum <"$file" | cut -d' ' -f1)
  count=$((count + 1))
  total=$((total + size))
  log "input ${file#"$INPUTS"/} $size bytes md5 $md5"
done <<EOF
$list
EOF
md5=$(printf '%s\n' "$list" | while IFS= read -r file; do cat "$file"; done | md5sum | cut -c1-8)
seed=$((0x$md5))
log "read $count input files, $total bytes, seed $seed"

# The staged inputs (each directly under inputs/), sorted, as a JSON array of strings: the worker
# stages one entry per input of the task, named as the task names it (names hold no control
# characters; backslashes and double quotes are escaped).
entries=$(find "$INPUTS" -mindepth 1 -maxdepth 1 | sort)
input_products=
while IFS= read -r entry; do
  [ -n "$entry" ] || continue
  escaped=$(basename "$entry" | sed 's/[\\"]/\\&/g')
  input_products="$input_products${input_products:+, }\"$escaped\""
done <<EOF
$entries
EOF
first_input=$(printf '%s\n' "$entries" | head -n 1)
log "inputs: [$input_products]"

# Acquisition from the first Sentinel-2 L1C name found in the inputs:
# S2A_MSIL1C_20210413T101347_N0500_R022_T34VEM_20210413T121553.SAFE
# or, for the jobs that work on FSC/RLIE products (quicklooks, checks), from the first product:
# FSC_20210413T101347_S2A_T34VEM_V100_1
safe=$(find "$INPUTS" -name 'S2?_MSIL1C_*' | sort | head -n 1)
l1c=
product=$(find "$INPUTS" -maxdepth 1 -name 'FSC_*' | sort | head -n 1)
[ -n "$product" ] || product=$(find "$INPUTS" -maxdepth 1 -name 'RLIE_*' | sort | head -n 1)
if [ -n "$safe" ]; then
  name=$(basename "$safe")
  l1c=${name%.SAFE}
  mission=$(printf '%s' "$name" | cut -d_ -f1)
  sensing=$(printf '%s' "$name" | cut -d_ -f3)
  tile=$(printf '%s' "$name" | cut -d_ -f6 | sed 's/^T//')
elif [ -n "$product" ]; then
  name=$(basename "$product")
  sensing=$(printf '%s' "$name" | cut -d_ -f2)
  mission=$(printf '%s' "$name" | cut -d_ -f3)
  tile=$(printf '%s' "$name" | cut -d_ -f4 | sed 's/^T//')
else
  # Products are named after the first input instead, with safe characters only (cut below).
  fallback=$(basename "$first_input")
  fallback=$(printf '%s' "${fallback%.SAFE}" | tr -cd 'A-Za-z0-9_.-')
  [ -n "$fallback" ] || fallback=input
  warn "no Sentinel-2 L1C nor FSC/RLIE product among the inputs: tile $STANDIN_TILE, products named after $fallback"
  mission=S2A
  sensing=20210413T101347
  tile=$STANDIN_TILE
fi
case "$sensing" in
  [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]) ;;
  *) fail 14 "cannot read a sensing time in $sensing" ;;
esac
log "acquisition $mission $sensing tile $tile"

if [ "$STANDIN_ALLOC_MB" -gt 0 ]; then
  log "allocating $STANDIN_ALLOC_MB MiB"
  # The shell keeps the whole command output in its own memory: resident, not a file.
  blob=$(head -c $((STANDIN_ALLOC_MB * 1048576)) /dev/zero | tr '\000' x)
  log "allocated ${#blob} bytes"
  blob=
fi
case "$STANDIN_ATTACK" in
  fill:*)
    log "attack: writing ${STANDIN_ATTACK#fill:} MiB to $OUTPUTS/fill.bin"
    mkdir -p "$OUTPUTS" || fail 20 "cannot create $OUTPUTS"
    head -c $((${STANDIN_ATTACK#fill:} * 1048576)) /dev/zero >"$OUTPUTS/fill.bin" || warn "cannot fill $OUTPUTS/fill.bin"
    ;;
esac
if [ "$STANDIN_SLEEP" -gt 0 ]; then
  log "processing for $STANDIN_SLEEP s"
  sleep "$STANDIN_SLEEP"
fi

case "$STANDIN_EXIT" in
  0) ;;
  200) log "no product: the scene is too cloudy"; exit 200 ;;
  20[1-7]) log "no product (code $STANDIN_EXIT)"; exit "$STANDIN_EXIT" ;;
  [1-9] | [1-9][0-9]) fail "$STANDIN_EXIT" "internal error (simulated)" ;;
  1[0-9][0-9]) fail "$STANDIN_EXIT" "external error (simulated)" ;;
  *) fail "$STANDIN_EXIT" "unclassified exit code (simulated)" ;;
esac

# A 1x1 degree footprint in the tile's UTM zone and latitude band: plausible, not exact.
zone=$(printf '%s' "$tile" | cut -c1-2 | sed 's/^0//')
band=$(printf '%s' "$tile" | cut -c3)
bands=CDEFGHJKLMNPQRSTUVWX
prefix=${bands%%"$band"*}
lon=$(((zone - 1) * 6 - 180 + 2))
lat=$((-80 + ${#prefix} * 8 + 4))
wkt="POLYGON (($lon $lat, $((lon + 1)) $lat, $((lon + 1)) $((lat + 1)), $lon $((lat + 1)), $lon $lat))"
cloud="$((seed % 1000 / 10)).$((seed % 10))"
start=$(printf '%s' "$sensing" | sed 's/^\(....\)\(..\)\(..\)T\(..\)\(..\)\(..\)$/\1-\2-\3T\4:\5:\6Z/')
day=$(printf '%s' "$sensing" | sed 's/^\(....\)\(..\)\(..\)T.*$/\1\/\2\/\3/')
quicklook='iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAAAAAA6mKC9AAAAg0lEQVR42kWOQRHAIBADIwEJSEACEpCABCQgAQlIQMJJQAISTkKbdtK+M7sbIMSUS219zGX7OAJSLLnV0dfc5gcxIdSWy1x9HLd97wGtlrzm6H62gTw95OkBeXrI0wPy9JCn5+HpIU8P/v77B+rrD9TXH6ivP1Bff6C+/kB9/fn6+nMBxMF4AQTUwroAAAAASUVORK5CYII='

products=0
for kind in $STANDIN_PRODUCTS; do
  upper=$(printf '%s' "$kind" | tr '[:lower:]' '[:upper:]')
  if [ -n "${fallback:-}" ]; then
    # At most 200 bytes in all (ASCII only): <KIND>_ and _<baseline>_<flag> take ${#upper} + 8.
    id="${upper}_$(printf '%s' "$fallback" | cut -c1-$((200 - ${#upper} - 8)))_${STANDIN_BASELINE}_${STANDIN_FLAG}"
  else
    id="${upper}_${sensing}_${mission}_T${tile}_${STANDIN_BASELINE}_${STANDIN_FLAG}"
  fi
  case "$kind" in
    fsc) theme=Snow raster=FSCTOC ;;
    rlie) theme=Ice raster=RLIE ;;
    l2a)
      [ -n "$l1c" ] || continue
      theme=L2A raster=SRE id=$l1c
      ;;
    quicklook) theme=Preview raster=QLK ;;
    check) theme=Check raster=CHK ;;
    *)
      # Other kinds (the smoke-test type's) are one product per input: named after a checksum of
      # the first input's name (short: object keys and the test S3 server's file names are bounded;
      # md5sum, since busybox has no cksum).
      theme=Test raster=$upper
      tag=$(basename "$first_input" | md5sum | cut -c1-12)
      id="${upper}_${tag}_${STANDIN_BASELINE}_${STANDIN_FLAG}"
      ;;
  esac
  dir="$OUTPUTS/$kind/$id"
  mkdir -p "$dir" || fail 20 "cannot create $dir"
  {
    printf 'P2\n# %s %s\n8 8\n255\n' "$id" "$raster"
    row=0
    while [ $row -lt 8 ]; do
      col=0
      line=
      while [ $col -lt 8 ]; do
        line="$line $(((seed / (row + 1) + col * 37 + row * 11) % 256))"
        col=$((col + 1))
      done
      printf '%s\n' "${line# }"
      row=$((row + 1))
    done
  } >"$dir/${id}_${raster}.pgm" || fail 21 "cannot write the raster of $id"
  printf '%s' "$quicklook" | base64 -d >"$dir/${id}_QLK.png" || fail 21 "cannot write the quicklook of $id"
  cat >"$dir/dias_catalog_submit.json" <<JSON || fail 21 "cannot write the metadata of $id"
{
  "productIdentifier": "CLMS/Pan-European/High_Resolution_Layers/$theme/$upper/$day/$id",
  "title": "$id",
  "productType": "$upper",
  "mission": "S2",
  "platform": "$mission",
  "tileId": "$tile",
  "wkt": "$wkt",
  "resolution": 20,
  "cloudCover": "$cloud",
  "startDate": "$start",
  "completionDate": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "processingBaseline": "$STANDIN_BASELINE",
  "inputFiles": $count,
  "inputProducts": [$input_products]
}
JSON
  case "$STANDIN_ATTACK" in
    symlink:*)
      ln -s "${STANDIN_ATTACK#symlink:}" "$dir/stolen.txt" || fail 22 "cannot link $dir/stolen.txt"
      log "attack: $dir/stolen.txt -> ${STANDIN_ATTACK#symlink:}"
      ;;
    hardlink:*)
      ln "${STANDIN_ATTACK#hardlink:}" "$dir/linked.txt" || fail 22 "cannot hard-link $dir/linked.txt"
      log "attack: $dir/linked.txt is a hard link to ${STANDIN_ATTACK#hardlink:}"
      ;;
    badname)
      mkdir -p "$dir/..\\escaped" && printf 'x' >"$dir/..\\escaped/x.txt" || fail 22 "cannot write a bad name in $dir"
      log "attack: wrote $dir/..\\escaped/x.txt"
      ;;
  esac
  log "wrote $kind product $id"
  products=$((products + 1))
done
log "done: $products products"
