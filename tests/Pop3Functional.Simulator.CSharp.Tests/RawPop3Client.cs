using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Xunit;

namespace Pop3Functional.Simulator.CSharp.Tests;

/// <summary>
/// The smallest POP3 client that can check a server byte for byte: it reads octets, splits lines
/// on CRLF only (a bare LF or a missing CR fails the test), undoes dot-stuffing itself and keeps
/// no state beyond a read buffer, so what the tests see is exactly what the simulator sent.
/// </summary>
internal sealed class RawPop3Client : IAsyncDisposable
{
    private readonly TcpClient? _tcp;
    private Stream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    /// <summary>A client over a stream that is already connected (in memory, or TLS from the start).</summary>
    public RawPop3Client(Stream stream) => _stream = stream;

    private RawPop3Client(TcpClient tcp) : this(tcp.GetStream()) => _tcp = tcp;

    /// <summary>Connects over TCP.</summary>
    public static async Task<RawPop3Client> ConnectAsync(IPEndPoint endpoint, CancellationToken ct)
    {
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(endpoint, ct);
            return new RawPop3Client(tcp);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    /// <summary>Connects to a TLS endpoint (POP3S) and runs the handshake, trusting only <paramref name="trusted"/>.</summary>
    public static async Task<RawPop3Client> ConnectTlsAsync(IPEndPoint endpoint, X509Certificate2 trusted, CancellationToken ct)
    {
        var client = await ConnectAsync(endpoint, ct);
        try
        {
            await client.StartTlsAsync(trusted, ct);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>True once the stream runs over TLS.</summary>
    public bool IsTls => _stream is SslStream;

    /// <summary>The certificate the server presented over TLS, if any.</summary>
    public X509Certificate? RemoteCertificate => (_stream as SslStream)?.RemoteCertificate;

    /// <summary>
    /// Runs a TLS client handshake over the current stream. The server's certificate is accepted
    /// only when its raw DER octets equal <paramref name="trusted"/>'s, whatever the chain says
    /// (the simulator's certificate is self-signed).
    /// </summary>
    public async Task StartTlsAsync(X509Certificate2 trusted, CancellationToken ct)
    {
        if (_start != _end)
        {
            throw new InvalidOperationException($"{_end - _start} plaintext octets arrived before the TLS handshake.");
        }

        var expected = trusted.RawData;
        var ssl = new SslStream(
            _stream,
            leaveInnerStreamOpen: false,
            (_, certificate, _, _) => certificate is not null && certificate.GetRawCertData().AsSpan().SequenceEqual(expected));
        await ssl.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions { TargetHost = "localhost" },
            ct);
        _stream = ssl;
    }

    /// <summary>Sends one command line (CRLF added).</summary>
    public async Task SendAsync(string line, CancellationToken ct)
    {
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), ct);
        await _stream.FlushAsync(ct);
    }

    /// <summary>Sends a command and reads its status line.</summary>
    public async Task<string> CommandAsync(string line, CancellationToken ct)
    {
        await SendAsync(line, ct);
        return await ReadLineAsync(ct);
    }

    /// <summary>Sends a command, expects +OK, and reads the multi-line answer (dot-unstuffed, without the terminator).</summary>
    public async Task<List<string>> MultiLineAsync(string line, CancellationToken ct)
    {
        var status = await CommandAsync(line, ct);
        Assert.StartsWith("+OK", status, StringComparison.Ordinal);
        var lines = new List<string>();
        foreach (var octets in await ReadBodyLinesAsync(ct))
        {
            lines.Add(Encoding.UTF8.GetString(octets));
        }

        return lines;
    }

    /// <summary>Logs in with USER and PASS; both must be answered +OK.</summary>
    public async Task LoginAsync(string user, string password, CancellationToken ct)
    {
        Assert.StartsWith("+OK", await CommandAsync($"USER {user}", ct), StringComparison.Ordinal);
        Assert.StartsWith("+OK", await CommandAsync($"PASS {password}", ct), StringComparison.Ordinal);
    }

    /// <summary>RETR n: the status line and the message octets exactly as stored (dot-unstuffed, CRLF kept).</summary>
    public async Task<(string Status, byte[] Message)> RetrAsync(int n, CancellationToken ct)
    {
        var status = await CommandAsync($"RETR {n}", ct);
        if (!status.StartsWith("+OK", StringComparison.Ordinal))
        {
            return (status, []);
        }

        var message = new MemoryStream();
        foreach (var line in await ReadBodyLinesAsync(ct))
        {
            message.Write(line);
            message.Write("\r\n"u8);
        }

        return (status, message.ToArray());
    }

    /// <summary>Reads one line, decoded as UTF-8, without its CRLF.</summary>
    public async Task<string> ReadLineAsync(CancellationToken ct) =>
        Encoding.UTF8.GetString(await ReadLineOctetsAsync(ct));

    /// <summary>Reads the lines of a multi-line answer up to ".", undoing dot-stuffing (RFC 1939 §3).</summary>
    private async Task<List<byte[]>> ReadBodyLinesAsync(CancellationToken ct)
    {
        var lines = new List<byte[]>();
        while (true)
        {
            var line = await ReadLineOctetsAsync(ct);
            if (line is [(byte)'.'])
            {
                return lines;
            }

            lines.Add(line is [(byte)'.', ..] ? line[1..] : line);
        }
    }

    /// <summary>Reads one line's octets without its CRLF; a line ending in a bare LF fails.</summary>
    private async Task<byte[]> ReadLineOctetsAsync(CancellationToken ct)
    {
        var line = new MemoryStream();
        while (true)
        {
            var lf = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (lf >= 0)
            {
                line.Write(_buffer, _start, lf + 1 - _start);
                _start = lf + 1;
                var octets = line.ToArray();
                if (octets.Length < 2 || octets[^2] != '\r')
                {
                    throw new InvalidDataException($"A line ended without CRLF: {Encoding.UTF8.GetString(octets)}");
                }

                return octets[..^2];
            }

            line.Write(_buffer, _start, _end - _start);
            _start = _end = 0;
            var n = await _stream.ReadAsync(_buffer, ct);
            if (n == 0)
            {
                throw new EndOfStreamException($"The server closed the connection (after {line.Length} octets of a line).");
            }

            _end = n;
        }
    }

    /// <summary>Reads until the server closes; returns how many octets arrived meanwhile.</summary>
    public async Task<int> ReadToEndAsync(CancellationToken ct)
    {
        var total = _end - _start;
        _start = _end = 0;
        int n;
        while ((n = await _stream.ReadAsync(_buffer, ct)) > 0)
        {
            total += n;
        }

        return total;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp?.Dispose();
    }
}
