namespace MoeModal.Plugins.Speech;

/// <summary>
/// The recipe's band-limited resampler (models/recipes/speech_codeswitch, README "front end"):
/// y[n] = Σ_k s[k]·c·sinc(c·(x−k))·hann((x−k)/H), x = n/ratio, c = 0.95·min(1, ratio),
/// H = ⌈16/c⌉, k ∈ [⌊x⌋−H+1, ⌊x⌋+H] ∩ [0, len). Float64 throughout. The kernel is tabulated once
/// per output phase (L phases for L outputs per P inputs, L/P = out/in in lowest terms).
/// </summary>
public static class Resampler
{
    private const int MaxPhases = 20_000;

    public static float[] Resample(float[] s, int rateIn, int rateOut)
    {
        if (rateIn == rateOut) return (float[])s.Clone();
        double ratio = (double)rateOut / rateIn;
        double cutoff = 0.95 * Math.Min(1.0, ratio);
        int half = (int)Math.Ceiling(16.0 / cutoff);
        int nIn = s.Length;
        int nOut = (int)Math.Floor(nIn * ratio);
        var y = new float[nOut];
        int g = Gcd(rateIn, rateOut), L = rateOut / g, P = rateIn / g;
        int taps = 2 * half;
        if (L <= MaxPhases)
        {
            // Phase r of output n = q·L + r: x = q·P + r/ratio, so the taps repeat every L outputs.
            var baseOf = new long[L];
            var w = new double[L * taps];
            for (int r = 0; r < L; r++)
            {
                double x = r / ratio;
                long b = (long)Math.Floor(x);
                baseOf[r] = b;
                for (int j = 0; j < taps; j++) w[r * taps + j] = Kernel(x - (b - half + 1 + j), cutoff, half);
            }
            for (int n = 0; n < nOut; n++)
            {
                int q = n / L, r = n % L;
                long k0 = (long)q * P + baseOf[r] - half + 1;
                y[n] = (float)Dot(s, k0, w.AsSpan(r * taps, taps));
            }
        }
        else
        {
            Span<double> w = new double[taps];
            for (int n = 0; n < nOut; n++)
            {
                double x = n / ratio;
                long b = (long)Math.Floor(x);
                for (int j = 0; j < taps; j++) w[j] = Kernel(x - (b - half + 1 + j), cutoff, half);
                y[n] = (float)Dot(s, b - half + 1, w);
            }
        }
        return y;
    }

    private static double Dot(float[] s, long k0, ReadOnlySpan<double> w)
    {
        double acc = 0;
        int j0 = (int)Math.Max(0, -k0), j1 = (int)Math.Min(w.Length, s.Length - k0);
        for (int j = j0; j < j1; j++) acc += s[k0 + j] * w[j];
        return acc;
    }

    private static double Kernel(double t, double cutoff, int half)
    {
        double u = t / half;
        if (Math.Abs(u) >= 1.0) return 0.0;
        double hann = 0.5 * (1.0 + Math.Cos(Math.PI * u));
        double ct = cutoff * t;
        double sinc = ct == 0.0 ? 1.0 : Math.Sin(Math.PI * ct) / (Math.PI * ct);
        return cutoff * sinc * hann;
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
