using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Authentication.ExtendedProtection;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Pop3Functional.Shell;

/// <summary>Opens connections: DNS with every address tried in turn, TCP_NODELAY, TLS.</summary>
internal static class Transport
{
    /// <summary>Connects to every address of the host in turn until one answers.</summary>
    public static async Task<Socket> ConnectTcpAsync(string host, int port, CancellationToken ct)
    {
        var addresses = IPAddress.TryParse(host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, ct).ConfigureAwait(false);

        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound);
        }

        return await ConnectAnyAsync(addresses, port, ct).ConfigureAwait(false);
    }

    /// <summary>Tries each address in turn; the first that accepts wins, else the last failure is thrown.</summary>
    internal static async Task<Socket> ConnectAnyAsync(IPAddress[] addresses, int port, CancellationToken ct)
    {
        Exception? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                // Commands are small and the core pipelines them itself: never wait for Nagle.
                socket.NoDelay = true;
                await socket.ConnectAsync(new IPEndPoint(address, port), ct).ConfigureAwait(false);
                return socket;
            }
            catch (Exception ex) when (ex is SocketException && !ct.IsCancellationRequested)
            {
                last = ex;
                socket.Dispose();
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw last!;
    }

    /// <summary>
    /// Runs the client side of a TLS handshake: TLS 1.2 minimum, SNI, the default validation
    /// (chain, name, expiry) unless a custom callback was given, which is logged when used.
    /// </summary>
    public static async Task<SslStream> AuthenticateAsync(
        Stream inner, Pop3ConnectionOptions options, string endpoint, CancellationToken ct)
    {
        var serverName = options.TlsServerName ?? options.Host;
        RemoteCertificateValidationCallback? validation = null;
        if (options.CertificateValidation is { } custom)
        {
            validation = (sender, certificate, chain, errors) =>
            {
                var accepted = custom(sender, certificate, chain, errors);
                options.Logger?.LogWarning(
                    "A custom certificate validation callback {Decision} the certificate of {Endpoint} (default checks said: {Errors})",
                    accepted ? "accepted" : "rejected",
                    endpoint,
                    errors);
                return accepted;
            };
        }

        var ssl = new SslStream(inner, leaveInnerStreamOpen: true, validation);
        try
        {
            var settings = new SslClientAuthenticationOptions
            {
                TargetHost = serverName,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                ClientCertificates = options.ClientCertificates,
            };
            await ssl.AuthenticateAsClientAsync(settings, ct).ConfigureAwait(false);
            return ssl;
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The channel-binding data for SCRAM-*-PLUS, when obtainable: on TLS 1.2, tls-unique (RFC 5929
    /// §3), the type RFC 5802 §6 makes every SCRAM-*-PLUS server implement (Cyrus 3.6 accepts no
    /// other); on TLS 1.3, where tls-unique is not defined (RFC 9266 §3) and .NET offers no
    /// tls-exporter, tls-server-end-point (RFC 5929 §4), which the core uses for -PLUS only when the
    /// caller names it (docs/interop.md: Cyrus 3.6 refuses it).
    /// </summary>
    public static Pop3Functional.Core.ChannelBinding? ChannelBinding(SslStream ssl)
    {
        return ssl.SslProtocol == SslProtocols.Tls12
            ? BindingData(ssl, ChannelBindingKind.Unique, "tls-unique:"u8) is { } unique
                ? Pop3Functional.Core.ChannelBinding.TlsUnique(unique)
                : null
            : BindingData(ssl, ChannelBindingKind.Endpoint, "tls-server-end-point:"u8) is { } endPoint
                ? Pop3Functional.Core.ChannelBinding.TlsServerEndPoint(endPoint)
                : null;
    }

    /// <summary>The data of one binding kind without .NET's header and type prefix, or null.</summary>
    private static byte[]? BindingData(SslStream ssl, ChannelBindingKind kind, ReadOnlySpan<byte> prefix)
    {
        try
        {
            using var binding = ssl.TransportContext?.GetChannelBinding(kind);
            if (binding is null || binding.IsInvalid || binding.Size <= 0)
            {
                return null;
            }

            var bytes = new byte[binding.Size];
            System.Runtime.InteropServices.Marshal.Copy(binding.DangerousGetHandle(), bytes, 0, bytes.Length);

            // .NET returns a 32-byte SEC_CHANNEL_BINDINGS header, then "tls-unique:" or
            // "tls-server-end-point:" and the data; SCRAM-PLUS wants the data alone (DESIGN §9).
            const int header = 32;
            var data = bytes.AsSpan(Math.Min(header, bytes.Length));
            if (data.StartsWith(prefix))
            {
                data = data[prefix.Length..];
            }

            return data.Length > 0 ? data.ToArray() : null;
        }
        catch (Exception ex) when (ex is NotSupportedException or InvalidOperationException)
        {
            return null;
        }
    }
}
