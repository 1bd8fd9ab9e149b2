using System.Text;
using System.Text.RegularExpressions;
using Xunit;

namespace Pop3Functional.Interop.Tests;

/// <summary>
/// What each server returns for a seeded message, and the checks that the client delivered
/// exactly that. The servers store the same seeded octets, but:
/// - Dovecot returns them unchanged.
/// - Courier returns them unchanged, except a message with raw 8-bit header octets to a client
///   that did not send UTF8: it wraps it in a new multipart/mixed message with the original as a
///   message/global part (boundary from its process id), so RETR delivers more octets than LIST
///   announced. The client must report that as a size mismatch (Retrieval.ListedOctets), and the
///   original octets must be inside the wrapper verbatim.
/// - Cyrus prepends the headers its LMTP delivery adds (Return-Path, Received, X-Cyrus-Session-Id,
///   X-Sieve): the seeded octets must be exactly what follows them, and LIST counts them.
/// </summary>
internal static partial class Expectations
{
    private static readonly byte[] HeaderEnd = "\r\n\r\n"u8.ToArray();

    /// <summary>The seeded messages, generated once per run.</summary>
    public static readonly IReadOnlyList<SeedMessage> Seeded = SeedMailbox.Messages();

    [GeneratedRegex(@"\A(?:(?:Return-Path|Received|X-Cyrus-Session-Id|X-Sieve): [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)+\z")]
    private static partial Regex CyrusDeliveryHeaders();

    /// <summary>True when the message's header holds a raw octet above 0x7F.</summary>
    public static bool Has8BitHeader(SeedMessage m) => HeaderOf(m.Octets).Any(b => b > 0x7F);

    /// <summary>Does this server rewrite this message for this session?</summary>
    public static bool Rewritten(Server server, bool utf8Sent, SeedMessage m) =>
        server == Server.Courier && !utf8Sent && Has8BitHeader(m);

    /// <summary>The size LIST must announce for a seeded message (Cyrus: checked by <see cref="CheckRetrieved"/> instead).</summary>
    public static void CheckListed(Server server, SeedMessage m, ulong listed)
    {
        if (server == Server.Cyrus)
        {
            Assert.True(listed > (ulong)m.Octets.Length, $"Cyrus LIST {m.Number}: {listed} octets, the seeded message alone has {m.Octets.Length}.");
        }
        else
        {
            Assert.Equal((ulong)m.Octets.Length, listed);
        }
    }

    /// <summary>RETR: the octets and what the client reported about them.</summary>
    public static void CheckRetrieved(Server server, bool utf8Sent, SeedMessage m, byte[] octets, Retrieval retrieval, ulong listed)
    {
        Assert.Equal(m.Number, (int)retrieval.Message);
        Assert.Equal((ulong)octets.Length, retrieval.Octets);
        if (Rewritten(server, utf8Sent, m))
        {
            // The size mismatch is an event the caller sees, not a failure.
            Assert.True(retrieval.ListedOctets.IsSome, $"Courier rewrote message {m.Number} ({octets.Length} octets, LIST said {listed}) but the client reported no size mismatch.");
            Assert.Equal(listed, retrieval.ListedOctets.Match(Some: v => v, None: () => 0UL));
            Assert.NotEqual(listed, (ulong)octets.Length);
            var wrapped = Concat("Content-Type: message/global\r\n\r\n"u8.ToArray(), m.Octets);
            Assert.True(IndexOf(octets, wrapped) >= 0, $"Courier's wrapper of message {m.Number} does not hold the seeded octets verbatim.");
            return;
        }

        Assert.True(retrieval.ListedOctets.IsNone, $"Message {m.Number}: a size mismatch was reported although LIST said {listed} and {octets.Length} arrived.");
        Assert.Equal(listed, (ulong)octets.Length);
        if (server == Server.Cyrus)
        {
            CheckCyrusPrefix(m, octets);
        }
        else
        {
            AssertSameOctets(m.Octets, octets, $"message {m.Number}");
        }
    }

    /// <summary>TOP n 0: the header and the blank line after it.</summary>
    public static void CheckTop(Server server, bool utf8Sent, SeedMessage m, byte[] top)
    {
        if (Rewritten(server, utf8Sent, m))
        {
            // The wrapper's own header (its boundary differs per session): one header, nothing after it.
            Assert.Equal(top.Length - HeaderEnd.Length, IndexOf(top, HeaderEnd));
            Assert.Contains("Content-Type: multipart/mixed", Encoding.UTF8.GetString(top), StringComparison.Ordinal);
            return;
        }

        var header = HeaderOf(m.Octets);
        if (server == Server.Cyrus)
        {
            CheckCyrusPrefix(m, top, header);
        }
        else
        {
            AssertSameOctets(header, top, $"TOP {m.Number} 0");
        }
    }

    private static void CheckCyrusPrefix(SeedMessage m, byte[] octets, byte[]? expectedTail = null)
    {
        var tail = expectedTail ?? m.Octets;
        Assert.True(octets.Length > tail.Length, $"Cyrus message {m.Number}: {octets.Length} octets, fewer than the {tail.Length} seeded.");
        AssertSameOctets(tail, octets[^tail.Length..], $"message {m.Number} after Cyrus's delivery headers");
        var prefix = Encoding.Latin1.GetString(octets[..^tail.Length]);
        Assert.Matches(CyrusDeliveryHeaders(), prefix);
    }

    /// <summary>The header section of a message, with the empty line that ends it.</summary>
    public static byte[] HeaderOf(byte[] message)
    {
        var end = IndexOf(message, HeaderEnd);
        return end < 0 ? message : message[..(end + HeaderEnd.Length)];
    }

    private static void AssertSameOctets(byte[] expected, byte[] actual, string what)
    {
        if (expected.AsSpan().SequenceEqual(actual))
        {
            return;
        }

        var at = expected.AsSpan().CommonPrefixLength(actual);
        Assert.Fail($"{what}: {actual.Length} octets arrived, {expected.Length} were stored; the first difference is at octet {at}.");
    }

    private static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);

    private static byte[] Concat(byte[] a, byte[] b) => [.. a, .. b];
}
