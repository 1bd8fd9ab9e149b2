using Pop3Functional.Cli;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>The CRLF → LF conversion on the way into tmp/, whatever the chunks the body arrives in.</summary>
public sealed class MessageFileTests
{
    /// <summary>The rule, written the obvious way: a CR directly followed by an LF is dropped; every other octet is kept.</summary>
    private static byte[] Expected(byte[] received)
    {
        var kept = new List<byte>(received.Length);
        for (var i = 0; i < received.Length; i++)
        {
            if (received[i] == '\r' && i + 1 < received.Length && received[i + 1] == '\n')
            {
                continue;
            }

            kept.Add(received[i]);
        }

        return [.. kept];
    }

    private static byte[] Stored(byte[] received, IEnumerable<int> chunkLengths)
    {
        var output = new MemoryStream();
        var file = new MessageFile(PhysicalFileSystem.Instance, "u", "tmp/u", output, hashContent: false);
        var at = 0;
        foreach (var length in chunkLengths)
        {
            var take = Math.Min(length, received.Length - at);
            file.WriteAsync(received.AsMemory(at, take), CancellationToken.None).AsTask().GetAwaiter().GetResult();
            at += take;
        }

        file.WriteAsync(received.AsMemory(at), CancellationToken.None).AsTask().GetAwaiter().GetResult();
        file.CompleteDurably();
        Assert.Equal(output.ToArray().Length, file.SizeOnDisk);
        Assert.Equal(received.Length, file.ReceivedOctets);
        return output.ToArray();
    }

    [Theory]
    [InlineData("a\r\nb\r\n", "a\nb\n")]
    [InlineData("lone\rcr\r\n", "lone\rcr\n")]
    [InlineData("\r\r\n\r", "\r\n\r")]
    [InlineData("\n\r\n\r\r", "\n\n\r\r")]
    [InlineData("", "")]
    public void Known_answers_in_one_chunk_and_byte_by_byte(string received, string stored)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(received);
        var expected = System.Text.Encoding.ASCII.GetBytes(stored);
        Assert.Equal(expected, Stored(bytes, []));
        Assert.Equal(expected, Stored(bytes, Enumerable.Repeat(1, bytes.Length)));
    }

    [Fact]
    public void Random_bodies_in_random_chunks_are_stored_as_the_rule_says()
    {
        // Octets drawn mostly from CR, LF and two letters, so that every CR/LF pattern and every
        // split between a CR and its LF occurs; 500 fixed seeds, so a failure names its seed.
        byte[] alphabet = [(byte)'\r', (byte)'\n', (byte)'a', (byte)'.'];
        for (var seed = 0; seed < 500; seed++)
        {
            var random = new Random(seed);
            var received = new byte[random.Next(0, 400)];
            for (var i = 0; i < received.Length; i++)
            {
                received[i] = random.Next(10) == 0 ? (byte)random.Next(256) : alphabet[random.Next(alphabet.Length)];
            }

            var chunks = Enumerable.Range(0, random.Next(0, 20)).Select(_ => random.Next(0, 40)).ToList();
            var stored = Stored(received, chunks);
            Assert.True(Expected(received).SequenceEqual(stored), $"seed {seed}");
        }
    }
}
