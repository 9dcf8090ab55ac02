#!/usr/bin/env bash
# Regenerates the image fixtures that ImageSharp 2.1 cannot write itself (CMYK and progressive
# JPEG, EXIF orientation set by another tool, WebP from libwebp, a multi-frame GIF).
# Needs Debian's imagemagick, webp and libimage-exiftool-perl. Every image is a light shape on black.
set -euo pipefail
cd "$(dirname "$0")"
IM=/usr/bin/convert
$IM -size 64x64 xc:black -fill 'rgb(230,200,180)' -draw 'ellipse 32,32 18,24 0,360' base.png
$IM base.png -colorspace CMYK -quality 92 cmyk.jpg
$IM base.png -interlace JPEG -quality 90 progressive.jpg
$IM base.png -rotate 270 -quality 92 exif-rotated.jpg
exiftool -q -overwrite_original -n -Orientation=6 exif-rotated.jpg
$IM base.png -colors 16 PNG8:palette.png
$IM base.png -depth 16 PNG48:rgb16.png
cwebp -quiet -q 80 base.png -o lossy.webp
$IM base.png \( base.png -negate \) -delay 10 -loop 0 animated.gif
rm base.png
