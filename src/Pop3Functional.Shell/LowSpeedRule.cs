using System.Diagnostics;

namespace Pop3Functional.Shell;

/// <summary>
/// curl's --speed-limit/--speed-time for a connection (DESIGN §12): fewer than the limit of
/// octets in any window of the given time is a timeout. A 1 GiB message that keeps flowing never
/// trips it; a server dripping one octet a second does within about one window. Only time spent
/// waiting for the server counts (from the start of a read to its octets); the client's own work
/// and the caller's (sinks, time between stream reads) never do, and cost no clock reads per slice.
/// </summary>
internal sealed class LowSpeedRule(long limitOctets, TimeSpan window, string endpoint)
{
    private long waited;
    private long octets;
    private long readStarted;

    /// <summary>A read is about to wait for the server.</summary>
    public void ReadStarting() => readStarted = Stopwatch.GetTimestamp();

    /// <summary>Records a read that returned; throws <see cref="TimeoutException"/> when a whole window was too slow.</summary>
    public void Observe(long received, string command)
    {
        octets += received;
        if (readStarted != 0)
        {
            waited += Stopwatch.GetTimestamp() - readStarted;
            readStarted = 0;
        }

        var elapsed = TimeSpan.FromSeconds((double)waited / Stopwatch.Frequency);
        if (elapsed < window)
        {
            return;
        }

        if (octets < limitOctets)
        {
            throw new TimeoutException(
                $"{endpoint} sent only {octets} octets in {elapsed.TotalSeconds:0.#} s during {command}, "
                + $"fewer than {limitOctets} per {window.TotalSeconds:0.#} s; the connection was closed.");
        }

        waited = 0;
        octets = 0;
    }

    /// <summary>Starts a new window (a new operation begins; idle time between operations is not slowness).</summary>
    public void Restart()
    {
        waited = 0;
        readStarted = 0;
        octets = 0;
    }
}
