using System.Diagnostics;

namespace Pop3Functional.Shell;

/// <summary>
/// curl's --speed-limit/--speed-time for a connection (DESIGN §12): fewer than the limit of
/// octets in any window of the given time is a timeout. A 1 GiB message that keeps flowing never
/// trips it; a server dripping one octet a second does within about one window.
/// </summary>
internal sealed class LowSpeedRule(long limitOctets, TimeSpan window, string endpoint)
{
    private long windowStart = Stopwatch.GetTimestamp();
    private long octets;

    /// <summary>Records a read; throws <see cref="TimeoutException"/> when a whole window was too slow.</summary>
    public void Observe(long received, string command)
    {
        octets += received;
        var elapsed = Stopwatch.GetElapsedTime(windowStart);
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

        windowStart = Stopwatch.GetTimestamp();
        octets = 0;
    }

    private long pausedAt;

    /// <summary>Stops the clock: control is with the caller (a sink, or between reads of a stream).</summary>
    public void Pause()
    {
        if (pausedAt == 0)
        {
            pausedAt = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>Starts the clock again; the paused time does not count.</summary>
    public void Resume()
    {
        if (pausedAt != 0)
        {
            windowStart += Stopwatch.GetTimestamp() - pausedAt;
            pausedAt = 0;
        }
    }

    /// <summary>Starts a new window (a new operation begins; idle time between operations is not slowness).</summary>
    public void Restart()
    {
        windowStart = Stopwatch.GetTimestamp();
        pausedAt = 0;
        octets = 0;
    }
}
