using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MoeModal.Plugins.Vision;

/// <summary>
/// Turns decoded pixels into the model's input exactly as the recipe does
/// (models/recipes/vision_fmnist): pixels to [0, 1]; alpha composited over black; gray =
/// w·(R, G, B) (gray sources keep their value); pad to a square with the background, centred;
/// adaptive average pooling to H × W; (g − mean) / std. Streams rows, so memory stays at one
/// image plus H × W accumulators.
/// </summary>
public sealed class VisionPreprocessor(VisionMetadata meta)
{
    /// <summary>Fills <paramref name="destination"/> (H·W floats) from <paramref name="image"/>.</summary>
    public void Process(ImageDecoder.Decoded image, Span<float> destination)
    {
        int w = image.Width, h = image.Height;
        int side = meta.PadToSquare ? Math.Max(w, h) : 0;
        int sideX = meta.PadToSquare ? side : w, sideY = meta.PadToSquare ? side : h;
        int offX = (sideX - w) / 2, offY = (sideY - h) / 2;
        var colBins = Bins(sideX, meta.Width);
        var rowBins = Bins(sideY, meta.Height);
        var sums = new double[meta.Width * meta.Height];
        var rowSum = new double[meta.Width];

        void AddRow(int y, ReadOnlySpan<float> grayRow)
        {
            Array.Clear(rowSum);
            for (int x = 0; x < grayRow.Length; x++)
            {
                float g = grayRow[x];
                if (g == 0) continue;
                foreach (int bx in colBins[x + offX]) rowSum[bx] += g;
            }
            foreach (int by in rowBins[y + offY])
                for (int bx = 0; bx < meta.Width; bx++) sums[by * meta.Width + bx] += rowSum[bx];
        }

        var grayRow = new float[w];
        var wts = meta.GrayWeights;
        if (image.Image is Image<Rgba64> deep)
        {
            deep.ProcessPixelRows(acc =>
            {
                for (int y = 0; y < h; y++)
                {
                    var row = acc.GetRowSpan(y);
                    for (int x = 0; x < w; x++)
                        grayRow[x] = Gray(row[x].R / 65535f, row[x].G / 65535f, row[x].B / 65535f, row[x].A / 65535f, row[x].R == row[x].G && row[x].G == row[x].B, wts);
                    AddRow(y, grayRow);
                }
            });
        }
        else
        {
            ((Image<Rgba32>)image.Image).ProcessPixelRows(acc =>
            {
                for (int y = 0; y < h; y++)
                {
                    var row = acc.GetRowSpan(y);
                    for (int x = 0; x < w; x++)
                        grayRow[x] = Gray(row[x].R / 255f, row[x].G / 255f, row[x].B / 255f, row[x].A / 255f, row[x].R == row[x].G && row[x].G == row[x].B, wts);
                    AddRow(y, grayRow);
                }
            });
        }

        // Padding contributes the background value to every bin it overlaps.
        float bg = meta.Background;
        for (int by = 0; by < meta.Height; by++)
        {
            var (y0, y1) = Range(by, sideY, meta.Height);
            for (int bx = 0; bx < meta.Width; bx++)
            {
                var (x0, x1) = Range(bx, sideX, meta.Width);
                long area = (long)(y1 - y0) * (x1 - x0);
                double sum = sums[by * meta.Width + bx];
                if (bg != 0)
                {
                    long inside = (long)Overlap(y0, y1, offY, offY + h) * Overlap(x0, x1, offX, offX + w);
                    sum += bg * (area - inside);
                }
                float mean = (float)(sum / area);
                destination[by * meta.Width + bx] = (mean - meta.Mean) / meta.Std;
            }
        }
    }

    private static float Gray(float r, float g, float b, float a, bool isGray, float[] w)
    {
        if (isGray) return r * a;
        return w[0] * (r * a) + w[1] * (g * a) + w[2] * (b * a);
    }

    /// <summary>Adaptive average pooling's input range for output <paramref name="i"/>: [⌊i·S/n⌋, ⌈(i+1)·S/n⌉).</summary>
    public static (int Start, int End) Range(int i, int size, int n) =>
        ((int)((long)i * size / n), (int)(((long)(i + 1) * size + n - 1) / n));

    private static int Overlap(int a0, int a1, int b0, int b1) => Math.Max(0, Math.Min(a1, b1) - Math.Max(a0, b0));

    /// <summary>For every input coordinate, the output bins whose range contains it.</summary>
    private static int[][] Bins(int size, int n)
    {
        var lists = new List<int>[size];
        for (int i = 0; i < size; i++) lists[i] = [];
        for (int o = 0; o < n; o++)
        {
            var (s, e) = Range(o, size, n);
            for (int i = s; i < e; i++) lists[i].Add(o);
        }
        return [.. lists.Select(l => l.ToArray())];
    }
}
