// The seeder of build/scripts/pop3-servers.sh. Usage:
//   seed maildir DIR crlf|lf    write the seeded mailbox as a Maildir under DIR (cur/new/tmp)
//   seed lmtp SOCKET USER...    deliver the seeded mailbox to each USER over LMTP (a Unix socket)
//   seed list                   print number, octets, kind and UID of each seeded message

using System.Net.Sockets;
using System.Text;
using Pop3Functional.Interop;

return args switch
{
    ["maildir", var dir, "crlf" or "lf"] => WriteMaildir(dir, args[2] == "lf"),
    ["lmtp", var socket, .. var users] when users.Length > 0 => DeliverLmtp(socket, users),
    ["list"] => List(),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: seed maildir DIR crlf|lf | seed lmtp SOCKET USER... | seed list");
    return 2;
}

static int List()
{
    foreach (var m in SeedMailbox.Messages())
    {
        Console.WriteLine($"{m.Number,3} {m.Octets.Length,9} {m.Kind,-22} {m.Uid}");
    }

    return 0;
}

// Maildir files in cur/ with fixed names and times, so every seeding gives the same order
// (Dovecot and Courier both number messages by file time, then name). Courier stores mail with LF
// line ends (it adds the CRs when it serves a message); Dovecot serves CRLF files as they are.
static int WriteMaildir(string dir, bool lf)
{
    foreach (var sub in new[] { "cur", "new", "tmp" })
    {
        Directory.CreateDirectory(Path.Combine(dir, sub));
    }

    foreach (var m in SeedMailbox.Messages())
    {
        var octets = lf ? ToLf(m.Octets) : m.Octets;
        var name = $"{1700000000 + m.Number}.M{m.Number}P1.interop,S={octets.Length}:2,";
        var path = Path.Combine(dir, "cur", name);
        File.WriteAllBytes(path, octets);
        var time = DateTime.UnixEpoch.AddSeconds(1700000000 + m.Number);
        File.SetLastWriteTimeUtc(path, time);
    }

    return 0;
}

static byte[] ToLf(byte[] crlf)
{
    var output = new MemoryStream(crlf.Length);
    for (var i = 0; i < crlf.Length; i++)
    {
        if (crlf[i] == '\r' && i + 1 < crlf.Length && crlf[i + 1] == '\n')
        {
            continue;
        }

        output.WriteByte(crlf[i]);
    }

    return output.ToArray();
}

// LMTP (RFC 2033) over a Unix socket: one transaction per message and user, in mailbox order.
static int DeliverLmtp(string socketPath, string[] users)
{
    using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    socket.Connect(new UnixDomainSocketEndPoint(socketPath));
    using var stream = new NetworkStream(socket, ownsSocket: false);
    using var reader = new StreamReader(stream, Encoding.Latin1);
    Expect(reader, "220", "greeting");
    Send(stream, "LHLO interop.localhost\r\n");
    Expect(reader, "250", "LHLO");
    var messages = SeedMailbox.Messages();
    foreach (var user in users)
    {
        foreach (var m in messages)
        {
            Send(stream, "MAIL FROM:<seed@interop.invalid>\r\n");
            Expect(reader, "250", "MAIL FROM");
            Send(stream, $"RCPT TO:<{user}>\r\n");
            Expect(reader, "250", $"RCPT TO {user}");
            Send(stream, "DATA\r\n");
            Expect(reader, "354", "DATA");
            stream.Write(DotStuff(m.Octets));
            Send(stream, ".\r\n");
            Expect(reader, "250", $"message {m.Number} for {user}");
        }
    }

    Send(stream, "QUIT\r\n");
    Expect(reader, "221", "QUIT");
    return 0;
}

static void Send(Stream stream, string line) => stream.Write(Encoding.ASCII.GetBytes(line));

// The reply's last line decides (multi-line replies have "250-" continuation lines).
static void Expect(StreamReader reader, string code, string what)
{
    while (true)
    {
        var line = reader.ReadLine() ?? throw new IOException($"LMTP: the server closed the connection (waiting for {what}).");
        if (line.Length >= 4 && line[3] == '-')
        {
            continue;
        }

        if (!line.StartsWith(code, StringComparison.Ordinal))
        {
            throw new IOException($"LMTP: {what} answered \"{line}\", expected {code}.");
        }

        return;
    }
}

static byte[] DotStuff(byte[] crlf)
{
    var output = new MemoryStream(crlf.Length + 1024);
    var lineStart = true;
    foreach (var b in crlf)
    {
        if (lineStart && b == '.')
        {
            output.WriteByte((byte)'.');
        }

        output.WriteByte(b);
        lineStart = b == '\n';
    }

    return output.ToArray();
}
