#!/usr/bin/env bash
# Regenerates the bundled sample images: Fashion-MNIST test images 1000-1019 (not used by the
# recipe's reference outputs), written in the formats and variants the vision plugin accepts.
# Needs Debian's dataset-fashion-mnist, imagemagick and python3. File names carry the true label.
set -euo pipefail
cd "$(dirname "$0")/images"
IM=/usr/bin/convert
labels=(tshirt trouser pullover dress coat sandal shirt sneaker bag boot)
tmp=$(mktemp -d)
/usr/bin/python3 - "$tmp" <<'PY'
import gzip, sys
d = "/usr/share/datasets/fashion-mnist/"
img = gzip.open(d + "t10k-images-idx3-ubyte.gz").read()[16:]
lab = gzip.open(d + "t10k-labels-idx1-ubyte.gz").read()[8:]
for i in range(1000, 1020):
    open(f"{sys.argv[1]}/{i}_{lab[i]}.raw", "wb").write(img[i*784:(i+1)*784])
PY
rm -f ./*.png ./*.jpg ./*.bmp ./*.gif ./*.webp
n=0
for raw in "$tmp"/*.raw; do
  base=$(basename "$raw" .raw); idx=${base%_*}; lab=${base#*_}
  name="${idx}_${labels[$lab]}"
  src="$IM -size 28x28 -depth 8 gray:$raw"
  case $((n % 10)) in
    0) $src "$name.png" ;;                                             # 8-bit gray PNG
    1) $src -filter box -resize 224x224 -quality 90 "$name.jpg" ;;      # upscaled JPEG
    2) $src -colorspace sRGB -type TrueColor "BMP3:$name.bmp" ;;        # 24-bit BMP
    3) $src "$name.gif" ;;                                             # GIF
    4) $src -define webp:lossless=true "$name.webp" ;;                 # lossless WebP
    5) $src -depth 16 "PNG48:$name.png" ;;                             # 16-bit RGB PNG
    6) $src -filter box -resize 112x112 -colorspace CMYK -quality 92 "$name.jpg" ;;  # CMYK JPEG
    7) $src -rotate 270 -filter box -resize 84x84 -quality 92 "$name.jpg"; exiftool -q -overwrite_original -n -Orientation=6 "$name.jpg" ;;  # EXIF-rotated
    8) $src -filter box -resize 56x56 -quality 85 -define webp:lossless=false "$name.webp" ;;  # lossy WebP
    9) $src -background black -gravity center -extent 40x28 "$name.png" ;;  # non-square PNG
  esac
  n=$((n + 1))
done
rm -rf "$tmp"
