namespace MoeModal.Plugins.Speech;

/// <summary>
/// Front-end constants, read from the package's metadata.features. <see cref="RelFloor"/> and
/// <see cref="ActiveDb"/> (v2 front end) make the features independent of level and of how much
/// silence surrounds the speech; without them (0 and +∞) the mean is over all frames (v1).
/// </summary>
public sealed record FeatureSpec(int SampleRate, int FrameLength, int Hop, int NFft, int NMels, double FMin, double FMax, double LogOffset, double[] Std)
{
    /// <summary>The log's offset is at least this times the utterance's largest mel energy.</summary>
    public double RelFloor { get; init; }

    /// <summary>Frames whose total mel energy is within this many dB of the loudest frame give the per-utterance mean.</summary>
    public double ActiveDb { get; init; } = double.PositiveInfinity;
}

/// <summary>
/// Log-mel features exactly as the recipe computes them: periodic Hann window, zero-padded real
/// FFT, power spectrum, HTK-scale triangular filters (no area normalisation),
/// log(x + max(offset, rel_floor·max x)), subtraction of the per-bin mean over the active frames,
/// division by the training set's per-bin std.
/// </summary>
public sealed class LogMel
{
    private readonly FeatureSpec _spec;
    private readonly double[] _window;
    private readonly double[][] _filters;   // [mel][bin]
    private readonly int[] _first, _last;   // non-zero bin range per filter
    private readonly Fft _fft;

    public LogMel(FeatureSpec spec)
    {
        _spec = spec;
        _window = new double[spec.FrameLength];
        for (int n = 0; n < spec.FrameLength; n++) _window[n] = 0.5 - 0.5 * Math.Cos(2.0 * Math.PI * n / spec.FrameLength);
        _fft = new Fft(spec.NFft);
        int bins = spec.NFft / 2 + 1;
        static double Mel(double f) => 2595.0 * Math.Log10(1.0 + f / 700.0);
        static double Hz(double m) => 700.0 * (Math.Pow(10.0, m / 2595.0) - 1.0);
        var points = new double[spec.NMels + 2];
        double m0 = Mel(spec.FMin), m1 = Mel(spec.FMax);
        for (int i = 0; i < points.Length; i++) points[i] = Hz(m0 + (m1 - m0) * i / (spec.NMels + 1));
        _filters = new double[spec.NMels][];
        _first = new int[spec.NMels];
        _last = new int[spec.NMels];
        for (int m = 0; m < spec.NMels; m++)
        {
            var f = new double[bins];
            double lo = points[m], c = points[m + 1], hi = points[m + 2];
            _first[m] = bins;
            for (int k = 0; k < bins; k++)
            {
                double freq = (double)k * spec.SampleRate / spec.NFft;
                f[k] = Math.Max(0.0, Math.Min((freq - lo) / (c - lo), (hi - freq) / (hi - c)));
                if (f[k] > 0) { _first[m] = Math.Min(_first[m], k); _last[m] = k; }
            }
            _filters[m] = f;
        }
    }

    public FeatureSpec Spec => _spec;

    /// <summary>Frames a signal of <paramref name="samples"/> at the spec's rate gives.</summary>
    public int Frames(int samples) => 1 + (Math.Max(samples, _spec.FrameLength) - _spec.FrameLength) / _spec.Hop;

    /// <summary>Features [frames × mels], row-major, for a signal already at the spec's sample rate.</summary>
    public float[] Compute(float[] signal)
    {
        var y = signal;
        if (y.Length < _spec.FrameLength) { y = new float[_spec.FrameLength]; signal.CopyTo(y, 0); }
        int frames = Frames(y.Length), mels = _spec.NMels, bins = _spec.NFft / 2 + 1;
        var mel = new double[frames * mels];
        var re = new double[_spec.NFft];
        var im = new double[_spec.NFft];
        var power = new double[bins];
        for (int t = 0; t < frames; t++)
        {
            Array.Clear(re);
            Array.Clear(im);
            int start = t * _spec.Hop;
            for (int n = 0; n < _spec.FrameLength; n++) re[n] = y[start + n] * _window[n];
            _fft.Forward(re, im);
            for (int k = 0; k < bins; k++) power[k] = re[k] * re[k] + im[k] * im[k];
            for (int m = 0; m < mels; m++)
            {
                double e = 0;
                var f = _filters[m];
                for (int k = _first[m]; k <= _last[m]; k++) e += power[k] * f[k];
                mel[t * mels + m] = e;
            }
        }
        return Normalize(mel, frames);
    }

    /// <summary>Mel energies [frames × mels] → log, minus the mean over active frames, over std (float32).</summary>
    private float[] Normalize(double[] mel, int frames)
    {
        int mels = _spec.NMels;
        double max = 0;
        foreach (double e in mel) max = Math.Max(max, e);
        double offset = Math.Max(_spec.LogOffset, _spec.RelFloor * max);
        var energy = new double[frames];
        double loudest = double.NegativeInfinity;
        for (int t = 0; t < frames; t++)
        {
            double sum = 0;
            for (int m = 0; m < mels; m++) sum += mel[t * mels + m];
            energy[t] = Math.Log(sum + offset);
            loudest = Math.Max(loudest, energy[t]);
        }
        double threshold = loudest - _spec.ActiveDb * Math.Log(10.0) / 10.0;
        for (int i = 0; i < mel.Length; i++) mel[i] = Math.Log(mel[i] + offset);
        var mean = new double[mels];
        int active = 0;
        for (int t = 0; t < frames; t++)
        {
            if (!(energy[t] >= threshold)) continue;
            active++;
            for (int m = 0; m < mels; m++) mean[m] += mel[t * mels + m];
        }
        var result = new float[frames * mels];
        for (int m = 0; m < mels; m++)
        {
            double mu = mean[m] / active;
            for (int t = 0; t < frames; t++) result[t * mels + m] = (float)((mel[t * mels + m] - mu) / _spec.Std[m]);
        }
        return result;
    }

    /// <summary>An in-place iterative radix-2 complex FFT (size a power of two), float64.</summary>
    private sealed class Fft
    {
        private readonly int _n;
        private readonly int[] _rev;
        private readonly double[] _cos, _sin;

        public Fft(int n)
        {
            if (n < 2 || (n & (n - 1)) != 0) throw new ArgumentException($"FFT size {n} is not a power of two");
            _n = n;
            _rev = new int[n];
            int bits = System.Numerics.BitOperations.Log2((uint)n);
            for (int i = 0; i < n; i++)
            {
                int r = 0;
                for (int b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
                _rev[i] = r;
            }
            _cos = new double[n / 2];
            _sin = new double[n / 2];
            for (int i = 0; i < n / 2; i++) { _cos[i] = Math.Cos(2 * Math.PI * i / n); _sin[i] = -Math.Sin(2 * Math.PI * i / n); }
        }

        public void Forward(double[] re, double[] im)
        {
            for (int i = 0; i < _n; i++)
            {
                int j = _rev[i];
                if (j > i) { (re[i], re[j]) = (re[j], re[i]); (im[i], im[j]) = (im[j], im[i]); }
            }
            for (int size = 2; size <= _n; size <<= 1)
            {
                int halfSize = size / 2, step = _n / size;
                for (int start = 0; start < _n; start += size)
                {
                    for (int k = 0; k < halfSize; k++)
                    {
                        double wr = _cos[k * step], wi = _sin[k * step];
                        int a = start + k, b = a + halfSize;
                        double tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
                        re[b] = re[a] - tr; im[b] = im[a] - ti;
                        re[a] += tr; im[a] += ti;
                    }
                }
            }
        }
    }
}
