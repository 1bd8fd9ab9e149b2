using System.Text;
using Xunit;

// Console output of a test (the docs' example prints the transcript) goes to that test's output.
[assembly: CaptureConsole]

namespace Pop3Functional.Simulator.CSharp.Tests;

internal static class Support
{
    /// <summary>A token that ends the test's I/O after <paramref name="seconds"/> (or when xUnit cancels the run).</summary>
    public static CancellationTokenSource Deadline(double seconds = 10)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(seconds));
        return cts;
    }

    /// <summary>Polls until <paramref name="condition"/> holds (or the token ends the wait).</summary>
    public static async Task WaitUntil(Func<bool> condition, CancellationToken ct)
    {
        while (!condition())
        {
            await Task.Delay(5, ct);
        }
    }

    /// <summary>Text as the store keeps it: UTF-8 with CRLF line ends.</summary>
    public static byte[] Crlf(string text) => Encoding.UTF8.GetBytes(text.Replace("\r\n", "\n").Replace("\n", "\r\n"));

    /// <summary>Asserts two octet sequences are equal without comparing millions of boxed items.</summary>
    public static void SameOctets(byte[] expected, byte[] actual, string what)
    {
        Assert.True(
            expected.AsSpan().SequenceEqual(actual),
            $"{what}: expected {expected.Length} octets, got {actual.Length}; first difference at {FirstDifference(expected, actual)}");
    }

    private static int FirstDifference(byte[] a, byte[] b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if (a[i] != b[i])
            {
                return i;
            }
        }

        return n;
    }
}
