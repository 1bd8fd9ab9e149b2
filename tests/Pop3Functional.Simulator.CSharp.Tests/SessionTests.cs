using Xunit;
using static Pop3Functional.Simulator.CSharp.Tests.Support;

namespace Pop3Functional.Simulator.CSharp.Tests;

/// <summary>A whole RFC 1939 session over TCP, from greeting to QUIT, checked octet for octet.</summary>
public class SessionTests
{
    private const string TextMessage = "Subject: one\n\nhello\n.dot line\n..two dots\n";

    // Kept as given: 8-bit octets, a lone "." line and a ".." line that the server must dot-stuff.
    private static readonly byte[] RawMessage =
        [.. "Subject: bytes\r\nX-Note: caf"u8, 0xC3, 0xA9, .. "\r\n\r\n.\r\n..\r\nend\r\n"u8];

    [Fact]
    public async Task Defaults_serve_text_bytes_and_generated_mail_byte_exact_and_QUIT_commits_the_deletions()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);

        var alice = sim.Mailbox("alice", "secret");
        var text = alice.Add(TextMessage, uid: "u-1");
        var raw = alice.Add(RawMessage); // a fresh UID
        var generated = alice.Add(MessageContent.Generated(10_000, seed: 7), "u-3");
        Assert.Equal(3, alice.Count);
        SameOctets(Crlf(TextMessage), text.Content.ToArray(), "text is stored with CRLF");

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        var greeting = await client.ReadLineAsync(ct);
        Assert.Matches(@"^\+OK Pop3Functional\.Simulator ready <[^>]+>$", greeting);

        await client.LoginAsync("alice", "secret", ct);
        var total = text.Content.Length + raw.Content.Length + generated.Content.Length;
        Assert.Equal($"+OK 3 {total}", await client.CommandAsync("STAT", ct));
        Assert.Equal(
            [$"1 {text.Content.Length}", $"2 {raw.Content.Length}", "3 10000"],
            await client.MultiLineAsync("LIST", ct));
        Assert.Equal(["1 u-1", $"2 {raw.Uid}", "3 u-3"], await client.MultiLineAsync("UIDL", ct));
        Assert.StartsWith("sim", raw.Uid, StringComparison.Ordinal);

        foreach (var (n, stored, expected) in new[]
                 {
                     (1, text, Crlf(TextMessage)),
                     (2, raw, RawMessage),
                     (3, generated, generated.Content.ToArray()),
                 })
        {
            var (status, message) = await client.RetrAsync(n, ct);
            Assert.Equal($"+OK {stored.Content.Length} octets follow.", status);
            SameOctets(expected, message, $"message {n}");
        }

        Assert.StartsWith("+OK", await client.CommandAsync("DELE 1", ct), StringComparison.Ordinal);
        Assert.StartsWith("+OK", await client.CommandAsync("DELE 3", ct), StringComparison.Ordinal);
        Assert.StartsWith("-ERR", await client.CommandAsync("RETR 1", ct), StringComparison.Ordinal);
        Assert.Equal($"+OK 1 {raw.Content.Length}", await client.CommandAsync("STAT", ct));
        Assert.Equal(3, alice.Count); // marked, not yet removed: that is QUIT's job (RFC 1939 §6)

        Assert.Equal("+OK Pop3Functional.Simulator signing off.", await client.CommandAsync("QUIT", ct));
        Assert.Equal(0, await client.ReadToEndAsync(ct)); // and the server closes

        Assert.Equal(1, alice.Count);
        Assert.Equal([raw.Uid], alice.Uids); // an F# list, compared as IEnumerable<string>
        Assert.Empty(sim.Errors);
    }

    [Fact]
    public async Task Leaving_without_QUIT_deletes_nothing()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        var bob = sim.Mailbox("bob", "pw");
        bob.Add("Subject: keep me\n\nbody\n");

        await using (var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct))
        {
            await client.ReadLineAsync(ct);
            await client.LoginAsync("bob", "pw", ct);
            Assert.StartsWith("+OK", await client.CommandAsync("DELE 1", ct), StringComparison.Ordinal);
        }

        // The session ends (and releases its lock) once the server reads end of stream; a new one
        // sees the message.
        await WaitUntil(() => sim.ActiveSessions == 0, ct);
        await using var again = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await again.ReadLineAsync(ct);
        await again.LoginAsync("bob", "pw", ct);
        Assert.StartsWith("+OK 1 ", await again.CommandAsync("STAT", ct), StringComparison.Ordinal);
        Assert.Equal(1, bob.Count);
    }

    [Fact]
    public async Task A_personality_and_a_fault_from_Faults_change_what_the_server_says()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        var options = SimulatorOptions.Default
            .WithPersonality(Personalities.dovecot)
            .WithFaults(Faults.ErrorReply(Faults.OnVerb("DELE"), "SYS/PERM", "Deletion is off."));
        await using var sim = await Pop3Simulator.StartAsync(options, ct);
        var carol = sim.Mailbox("carol", "pw");
        carol.Add("Subject: stays\n\nbody\n");

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        Assert.Matches(@"^\+OK Dovecot \(Debian\) ready\. <[^>]+>$", await client.ReadLineAsync(ct));
        Assert.Equal(
            ["CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "USER",
             "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256"],
            await client.MultiLineAsync("CAPA", ct));
        await client.LoginAsync("carol", "pw", ct);
        Assert.Equal("-ERR [SYS/PERM] Deletion is off.", await client.CommandAsync("DELE 1", ct));
        Assert.Equal("+OK Logging out.", await client.CommandAsync("QUIT", ct));
        Assert.Equal(0, await client.ReadToEndAsync(ct));
        Assert.Equal(1, carol.Count);
    }

    [Fact]
    public async Task A_preset_changed_from_CSharp_with_the_With_helpers()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        var personality = Personalities.dovecot
            .WithName("tiny")
            .WithGreeting("tiny POP3 ready")
            .WithApop(false)
            .WithUidl(false)
            .WithCapabilitiesBeforeLogin("USER", "TOP")
            .WithQuitText("bye")
            .WithRetrStatus(RetrStatusStyle.MessageFollows);
        Assert.True(Personalities.dovecot.Apop); // the preset itself is unchanged
        Assert.Equal("dovecot", Personalities.dovecot.Name);

        await using var sim = await Pop3Simulator.StartAsync(
            SimulatorOptions.Default.WithPersonality(personality).WithoutTls(), ct);
        sim.Mailbox("dan", "pw").Add("Subject: x\n\ny\n");

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        Assert.Equal("+OK tiny POP3 ready", await client.ReadLineAsync(ct));
        Assert.Equal(["USER", "TOP"], await client.MultiLineAsync("CAPA", ct));
        await client.LoginAsync("dan", "pw", ct);
        Assert.StartsWith("-ERR", await client.CommandAsync("UIDL", ct), StringComparison.Ordinal);
        var (status, message) = await client.RetrAsync(1, ct);
        Assert.Equal("+OK Message follows.", status);
        SameOctets(Crlf("Subject: x\n\ny\n"), message, "message 1");
        Assert.Equal("+OK bye", await client.CommandAsync("QUIT", ct));
    }

    [Fact]
    public async Task A_generated_mailbox_is_served_byte_exact_with_its_own_UIDs()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);

        var options = GeneratorOptions.Default.WithSeed(7).WithCount(12).WithSizes(1024, 8192);
        var generated = MailboxGenerator.Generate(options);
        Assert.Equal(12, generated.Count);
        // Count 12 holds every kind a mailbox can have ("large" only with a large message).
        Assert.Equal(
            MailboxGenerator.Kinds.Where(k => k != "large").Order(),
            generated.Select(m => m.Kind).Distinct().Order());

        var erin = sim.Mailbox("erin", "pw");
        var stored = erin.AddGenerated(options);
        var dots = erin.Add(MailboxGenerator.Message("dot-lines", 4, 5000));
        Assert.Equal(generated.Select(m => m.Uid), stored.Select(m => m.Uid)); // deterministic per seed
        Assert.Equal(5000, dots.Content.Length);
        var all = stored.Append(dots).ToList();

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);
        await client.LoginAsync("erin", "pw", ct);
        Assert.Equal(
            all.Select((m, i) => $"{i + 1} {m.Uid}"),
            await client.MultiLineAsync("UIDL", ct));
        for (var i = 0; i < all.Count; i++)
        {
            var (_, message) = await client.RetrAsync(i + 1, ct);
            SameOctets(all[i].Content.ToArray(), message, $"message {i + 1} ({(i < generated.Count ? generated[i].Kind : "dot-lines")})");
        }

        Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_5_MiB_message_from_a_stream_factory_is_served_byte_exact_every_time()
    {
        using var deadline = Deadline(15);
        var ct = deadline.Token;
        var bytes = FiveMebibytes();
        var opened = 0;
        var content = MessageContent.OfStream(
            () =>
            {
                Interlocked.Increment(ref opened);
                return new MemoryStream(bytes, writable: false);
            },
            bytes.Length);

        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        sim.Mailbox("frank", "pw").Add(content, "big");

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);
        await client.LoginAsync("frank", "pw", ct);
        Assert.Equal(["1 5242880"], await client.MultiLineAsync("LIST", ct));
        for (var round = 1; round <= 2; round++)
        {
            var (status, message) = await client.RetrAsync(1, ct);
            Assert.Equal("+OK 5242880 octets follow.", status);
            SameOctets(bytes, message, $"RETR number {round}");
        }

        Assert.True(opened >= 2, $"each serving opens a fresh stream (opened {opened} times)");
        Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
    }

    /// <summary>5 MiB of CRLF lines: printable ASCII with 8-bit octets, every seventh line starting with '.'.</summary>
    private static byte[] FiveMebibytes()
    {
        const int size = 5 * 1024 * 1024;
        var bytes = new byte[size];
        var random = new Random(5);
        var at = 0;
        var line = 0;
        while (at < size - 2)
        {
            var length = Math.Min(random.Next(0, 120), size - 2 - at);
            for (var i = 0; i < length; i++)
            {
                bytes[at + i] = i == 0 && line % 7 == 0 ? (byte)'.' : (byte)random.Next(0x20, 0x100);
            }

            at += length;
            if (at < size - 2)
            {
                bytes[at++] = (byte)'\r';
                bytes[at++] = (byte)'\n';
            }

            line++;
        }

        // at is size - 2 or size - 1 here; end with a complete line either way.
        if (at == size - 1)
        {
            bytes[at - 1] = (byte)'x';
            at--;
        }

        bytes[at] = (byte)'\r';
        bytes[at + 1] = (byte)'\n';
        return bytes;
    }

    [Fact]
    public async Task Twenty_concurrent_sessions_on_twenty_accounts()
    {
        using var deadline = Deadline(15);
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        const int sessions = 20;
        var expected = new Dictionary<string, byte[][]>();
        for (var i = 1; i <= sessions; i++)
        {
            var box = sim.Mailbox($"user{i:D2}", $"pw{i}");
            expected[box.User] = Enumerable.Range(1, 3)
                .Select(k => box.Add(MessageContent.Generated(2000 * k + i, seed: 100 * i + k)).Content.ToArray())
                .ToArray();
        }

        var allLoggedIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var carryOn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loggedIn = 0;

        async Task Session(int i)
        {
            var user = $"user{i:D2}";
            await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
            await client.ReadLineAsync(ct);
            await client.LoginAsync(user, $"pw{i}", ct);
            if (Interlocked.Increment(ref loggedIn) == sessions)
            {
                allLoggedIn.SetResult();
            }

            await carryOn.Task.WaitAsync(ct); // every session is logged in at once here
            Assert.StartsWith("+OK 3 ", await client.CommandAsync("STAT", ct), StringComparison.Ordinal);
            for (var n = 1; n <= 3; n++)
            {
                var (_, message) = await client.RetrAsync(n, ct);
                SameOctets(expected[user][n - 1], message, $"{user} message {n}");
            }

            Assert.StartsWith("+OK", await client.CommandAsync("DELE 2", ct), StringComparison.Ordinal);
            Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
        }

        var all = Task.WhenAll(Enumerable.Range(1, sessions).Select(Session));
        await allLoggedIn.Task.WaitAsync(ct);
        Assert.Equal(sessions, sim.ActiveSessions);
        carryOn.SetResult();
        await all;

        Assert.Equal(sessions, sim.SessionsStarted);
        for (var i = 1; i <= sessions; i++)
        {
            Assert.Equal(2, sim.Mailbox($"user{i:D2}").Count);
        }

        Assert.Empty(sim.Errors);
    }

    [Fact]
    public async Task A_second_session_on_a_locked_account_gets_IN_USE()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        sim.Mailbox("gina", "pw").Add("Subject: one\n\nbody\n");

        await using var first = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await first.ReadLineAsync(ct);
        await first.LoginAsync("gina", "pw", ct);

        await using (var second = await RawPop3Client.ConnectAsync(sim.Endpoint, ct))
        {
            await second.ReadLineAsync(ct);
            Assert.StartsWith("+OK", await second.CommandAsync("USER gina", ct), StringComparison.Ordinal);
            Assert.StartsWith("-ERR [IN-USE]", await second.CommandAsync("PASS pw", ct), StringComparison.Ordinal);
        }

        Assert.StartsWith("+OK", await first.CommandAsync("QUIT", ct), StringComparison.Ordinal);

        // The lock went with the first session's QUIT.
        await using var third = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await third.ReadLineAsync(ct);
        await third.LoginAsync("gina", "pw", ct);
    }
}
