// The mailbox every interop account starts with. Compiled into the seeder (which stores it on the
// servers) and into the interop tests (which regenerate it to compare what the servers return).

using Pop3Functional.Simulator;

namespace Pop3Functional.Interop;

/// <summary>One seeded message: its generated UID, its kind and its octets (CRLF line ends).</summary>
internal sealed record SeedMessage(int Number, string Uid, string Kind, byte[] Octets);

/// <summary>The fixed seeded mailbox: the simulator's generator with a fixed seed.</summary>
internal static class SeedMailbox
{
    /// <summary>The generator's seed; changing it changes every mailbox on every server.</summary>
    public const int Seed = 20240707;

    /// <summary>Generated messages of 1 KiB to 32 KiB, every kind of the generator among them.</summary>
    public const int GeneratedCount = 30;

    /// <summary>The size of the extra multipart message with a base64 attachment.</summary>
    public const int AttachmentSize = 3 * 1024 * 1024;

    /// <summary>
    /// The messages in delivery order: 30 generated ones (dot lines, 998-octet lines, raw 8-bit
    /// headers, encoded words, folding, MIME, an empty body), then a 3 MiB attachment message.
    /// </summary>
    public static IReadOnlyList<SeedMessage> Messages() =>
        MailboxGenerator
            .generate(GeneratorOptions.Default.WithSeed(Seed).WithCount(GeneratedCount).WithSizes(1024, 32 * 1024).WithoutLargeMessage())
            .Append(MailboxGenerator.message("multipart-attachment", Seed, AttachmentSize))
            .Select((m, i) => new SeedMessage(i + 1, m.Uid, m.Kind, ToBytes(m.Content)))
            .ToList();

    private static byte[] ToBytes(MessageContent content)
    {
        var bytes = new byte[checked((int)content.Length)];
        var done = 0;
        while (done < bytes.Length)
        {
            var n = content.CopyTo(done, bytes.AsSpan(done));
            if (n == 0)
            {
                throw new InvalidOperationException($"The generated content ended after {done} of {bytes.Length} octets.");
            }

            done += n;
        }

        return bytes;
    }
}
