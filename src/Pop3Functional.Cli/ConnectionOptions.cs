using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using LanguageExt;

namespace Pop3Functional.Cli;

// Inside the namespace: these win over LanguageExt's types of the same names.
using System.CommandLine;
using Secret = Pop3Functional.Core.Secret;

/// <summary>Checks the server's certificate as the options say, and remembers why it refused.</summary>
internal sealed class CertificateCheck
{
    private readonly bool skipVerify;
    private readonly byte[]? fingerprint;
    private readonly X509Certificate2Collection? authorities;

    public CertificateCheck(bool skipVerify, byte[]? fingerprint, X509Certificate2Collection? authorities)
    {
        this.skipVerify = skipVerify;
        this.fingerprint = fingerprint;
        this.authorities = authorities;
    }

    /// <summary>Why the certificate was refused, once it was.</summary>
    public string? Problem { get; private set; }

    /// <summary>"sha256:" and 64 hex digits (colons allowed) as bytes; null when malformed.</summary>
    public static byte[]? ParseFingerprint(string text)
    {
        if (!text.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var hex = text["sha256:".Length..].Replace(":", "");
        try
        {
            return hex.Length == 64 ? Convert.FromHexString(hex) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    public static string Fingerprint(X509Certificate certificate) =>
        "sha256:" + Convert.ToHexStringLower(SHA256.HashData(certificate.GetRawCertData()));

    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        Problem = Check(certificate, chain, errors);
        return Problem is null;
    }

    private string? Check(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (skipVerify)
        {
            return null;
        }

        if (certificate is null)
        {
            return "the server sent no certificate";
        }

        if (fingerprint is not null)
        {
            // A pinned certificate stands for itself: its chain and names do not matter.
            var actual = SHA256.HashData(certificate.GetRawCertData());
            return CryptographicOperations.FixedTimeEquals(actual, fingerprint)
                ? null
                : $"the server's certificate {Fingerprint(certificate)} is not the one --fingerprint names";
        }

        if (authorities is not null)
        {
            using var custom = new X509Chain();
            custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            custom.ChainPolicy.CustomTrustStore.AddRange(authorities);
            custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (chain is not null)
            {
                custom.ChainPolicy.ExtraStore.AddRange(chain.ChainElements.Select(e => e.Certificate).ToArray());
            }

            using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            if (!custom.Build(leaf))
            {
                return "the server's certificate is not issued by --ca-file: " + Statuses(custom);
            }

            return errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch)
                ? $"the server's certificate ({certificate.Subject}) is not for this host name"
                : null;
        }

        if (errors == SslPolicyErrors.None)
        {
            return null;
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return $"the server's certificate ({certificate.Subject}) is not for this host name";
        }

        return chain is null
            ? $"the server's certificate is not trusted ({errors})"
            : "the server's certificate is not trusted: " + Statuses(chain)
              + $" ({Fingerprint(certificate)}; trust it with --ca-file or --fingerprint)";
    }

    private static string Statuses(X509Chain chain)
    {
        var statuses = chain.ChainStatus.Where(s => s.Status != X509ChainStatusFlags.NoError)
            .Select(s => $"{s.Status}: {s.StatusInformation.Trim()}").Distinct().ToArray();
        return statuses.Length == 0 ? "the chain does not verify" : string.Join("; ", statuses);
    }
}

/// <summary>What the connection options resolve to: the builder, its certificate check and the state key.</summary>
internal sealed record Connection(Pop3Builder Builder, CertificateCheck Check, string StateKey);

/// <summary>The connection options every client command shares (docs/cli.md).</summary>
internal sealed class ConnectionOptions
{
    private static readonly string[] TlsModes = ["implicit", "starttls", "none"];

    public Option<string?> Host { get; } = new("--host") { Description = "The POP3 server's host name or address" };

    public Option<int?> Port { get; } = new("--port") { Description = "The port (default 995 with implicit TLS, else 110)" };

    public Option<string?> Tls { get; } = new("--tls")
    {
        Description = "implicit (default on 995), starttls (default on other ports: STLS required before anything secret) or none",
    };

    public Option<string?> User { get; } = new("--user", "-u") { Description = "The account's user name" };

    public Option<string?> Password { get; } = new("--password") { Hidden = true };

    public Option<string?> PasswordEnv { get; } = new("--password-env") { Description = "Read the password from this environment variable" };

    public Option<string?> PasswordFile { get; } = new("--password-file") { Description = "Read the password from the first line of this file" };

    public Option<bool> PasswordStdin { get; } = new("--password-stdin") { Description = "Read the password from the first line of standard input (a pipe)" };

    public Option<string> Auth { get; } = new("--auth")
    {
        Description = "auto (the strongest offered), user, apop, plain, login, cram-md5, scram-sha-1, scram-sha-256, scram-sha-1-plus, scram-sha-256-plus, xoauth2, oauthbearer, or another SASL name",
        DefaultValueFactory = _ => "auto",
    };

    public Option<string?> OAuth2TokenEnv { get; } = new("--oauth2-token-env") { Description = "Log in with the OAuth 2 bearer token in this environment variable" };

    public Option<double> Timeout { get; } = new("--timeout")
    {
        Description = "Seconds to wait for a reply (and for the connection)",
        DefaultValueFactory = _ => 60,
    };

    public Option<bool> InsecureSkipVerify { get; } = new("--insecure-skip-verify")
    {
        Description = "INSECURE: accept any certificate, so anyone on the path can read the password and the mail",
    };

    public Option<string?> CaFile { get; } = new("--ca-file") { Description = "Trust only the certificate authorities in this PEM (or DER) file" };

    public Option<string?> Fingerprint { get; } = new("--fingerprint") { Description = "Trust exactly the certificate with this SHA-256 fingerprint (sha256:hex)" };

    public Option<bool> AllowPlaintextPassword { get; } = new("--allow-plaintext-password")
    {
        Description = "With --tls none: send the password unencrypted anyway (the second explicit opt-in)",
    };

    public ConnectionOptions()
    {
        Tls.AcceptOnlyFromAmong(TlsModes);
    }

    public void AddTo(Command command)
    {
        foreach (var option in new Option[]
                 {
                     Host, Port, Tls, User, Password, PasswordEnv, PasswordFile, PasswordStdin, Auth, OAuth2TokenEnv, Timeout,
                     InsecureSkipVerify, CaFile, Fingerprint, AllowPlaintextPassword,
                 })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The builder these options describe, or the usage failure that stops the command.</summary>
    public Either<CliFailure, Connection> Resolve(ParseResult parse, CliIo io, int verbosity, bool needsLogin)
    {
        if (parse.GetResult(Password) is not null)
        {
            return CliFailure.Usage(
                "a password on the command line is refused: every user of this machine can read it (ps, /proc, shell history); use --password-env VAR, --password-file PATH, --password-stdin or the prompt");
        }

        var host = parse.GetValue(Host);
        if (string.IsNullOrWhiteSpace(host))
        {
            return CliFailure.Usage("--host is required");
        }

        var port = parse.GetValue(Port);
        if (port is < 1 or > 65535)
        {
            return CliFailure.Usage("--port must be between 1 and 65535");
        }

        var tls = parse.GetValue(Tls) ?? (port is null or Pop3.ImplicitTlsPort ? "implicit" : "starttls");
        var builder = tls switch
        {
            "implicit" => Pop3.Connect(host, port ?? Pop3.ImplicitTlsPort).WithImplicitTls(),
            "starttls" => Pop3.Connect(host, port ?? 110).WithStartTls(),
            _ => Pop3.Connect(host, port ?? 110).WithoutTls(),
        };
        if (tls == "none" && parse.GetValue(AllowPlaintextPassword))
        {
            builder = builder.AllowPlaintextCredentials();
        }

        var timeout = parse.GetValue(Timeout);
        if (!(timeout > 0) || timeout > Pop3Builder.MaxTimeLimit.TotalSeconds)
        {
            return CliFailure.Usage("--timeout must be a positive number of seconds");
        }

        builder = builder.WithTimeout(TimeSpan.FromSeconds(timeout)).WithConnectTimeout(TimeSpan.FromSeconds(Math.Min(timeout, 30)));

        var check = Trust(parse, io);
        if (check.IsLeft)
        {
            return (CliFailure)check;
        }

        var certificateCheck = (CertificateCheck)check;
        builder = builder.WithCertificateValidation(certificateCheck.Validate);
        if (verbosity > 0)
        {
            builder = builder.WithDebugLevel(Math.Min(verbosity, 2), io.Error);
        }

        var user = parse.GetValue(User);
        if (string.IsNullOrEmpty(user))
        {
            return needsLogin ? CliFailure.Usage("--user is required") : new Connection(builder, certificateCheck, host);
        }

        var mechanism = Mechanism(parse.GetValue(Auth) ?? "auto");
        if (mechanism.IsLeft)
        {
            return (CliFailure)mechanism;
        }

        var stateKey = $"{user}@{host.ToLowerInvariant()}";
        if (!needsLogin)
        {
            return new Connection(builder, certificateCheck, stateKey);
        }

        if (parse.GetValue(OAuth2TokenEnv) is { } tokenVariable)
        {
            var token = Environment.GetEnvironmentVariable(tokenVariable);
            if (string.IsNullOrEmpty(token))
            {
                return CliFailure.Usage($"--oauth2-token-env: the environment variable {tokenVariable} is not set");
            }

            builder = builder.WithOAuth2(user, Secrets.FromString(token));
            var chosen = (Pop3Mechanism)mechanism;
            return new Connection(chosen == Pop3Mechanism.Auto ? builder : builder.WithMechanism(chosen), certificateCheck, stateKey);
        }

        var secret = PasswordOf(parse, io);
        if (secret.IsLeft)
        {
            return (CliFailure)secret;
        }

        builder = builder.WithCredentials(user, (Secret)secret).WithMechanism((Pop3Mechanism)mechanism);
        return new Connection(builder, certificateCheck, stateKey);
    }

    private Either<CliFailure, CertificateCheck> Trust(ParseResult parse, CliIo io)
    {
        var skip = parse.GetValue(InsecureSkipVerify);
        var fingerprintText = parse.GetValue(Fingerprint);
        var caFile = parse.GetValue(CaFile);
        if ((skip ? 1 : 0) + (fingerprintText is null ? 0 : 1) + (caFile is null ? 0 : 1) > 1)
        {
            return CliFailure.Usage("--insecure-skip-verify, --fingerprint and --ca-file exclude one another");
        }

        if (skip)
        {
            io.Error.WriteLine("pop3: warning: --insecure-skip-verify: the server's certificate is NOT checked; anyone on the path can read the password and the mail");
        }

        byte[]? fingerprint = null;
        if (fingerprintText is not null && (fingerprint = CertificateCheck.ParseFingerprint(fingerprintText)) is null)
        {
            return CliFailure.Usage("--fingerprint must be sha256: followed by 64 hex digits (pop3 simulate prints one)");
        }

        X509Certificate2Collection? authorities = null;
        if (caFile is not null)
        {
            try
            {
                authorities = [];
                authorities.ImportFromPemFile(caFile);
                if (authorities.Count == 0)
                {
                    authorities.Add(X509CertificateLoader.LoadCertificateFromFile(caFile));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                return CliFailure.Usage($"--ca-file {caFile}: {e.Message}");
            }
        }

        return new CertificateCheck(skip, fingerprint, authorities);
    }

    private static Either<CliFailure, Pop3Mechanism> Mechanism(string name) => name.ToLowerInvariant() switch
    {
        "auto" => Pop3Mechanism.Auto,
        "user" => Pop3Mechanism.UserPass,
        "apop" => Pop3Mechanism.Apop,
        "plain" => Pop3Mechanism.Plain,
        "login" => Pop3Mechanism.Login,
        "cram-md5" => Pop3Mechanism.CramMd5,
        "scram-sha-1" => Pop3Mechanism.ScramSha1,
        "scram-sha-256" => Pop3Mechanism.ScramSha256,
        "scram-sha-1-plus" => Pop3Mechanism.ScramSha1Plus,
        "scram-sha-256-plus" => Pop3Mechanism.ScramSha256Plus,
        "xoauth2" => Pop3Mechanism.XOAuth2,
        "oauthbearer" => Pop3Mechanism.OAuthBearer,
        _ when name.Length is > 0 and <= 20 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_') =>
            Pop3Mechanism.Sasl(name.ToUpperInvariant()),
        _ => CliFailure.Usage($"--auth {name}: not a mechanism name"),
    };

    private Either<CliFailure, Secret> PasswordOf(ParseResult parse, CliIo io)
    {
        var variable = parse.GetValue(PasswordEnv);
        var file = parse.GetValue(PasswordFile);
        var stdin = parse.GetValue(PasswordStdin);
        if ((variable is null ? 0 : 1) + (file is null ? 0 : 1) + (stdin ? 1 : 0) > 1)
        {
            return CliFailure.Usage("give one of --password-env, --password-file and --password-stdin");
        }

        if (variable is not null || file is not null)
        {
            var secret = variable is not null ? Secrets.FromEnvironment(variable) : Secrets.FromFile(file!);
            return secret.Match<Either<CliFailure, Secret>>(
                s => s,
                e => CliFailure.Usage(variable is not null ? $"--password-env {variable}: {e.Message}" : $"--password-file {file}: {e.Message}"));
        }

        if (stdin)
        {
            // Explicit, as with docker login --password-stdin: a piped standard input is never read
            // for a password unasked (a cron job or a script would otherwise block or leak input).
            var line = io.In.ReadLine();
            return string.IsNullOrEmpty(line)
                ? CliFailure.Usage("--password-stdin: the first line of standard input is empty")
                : Secrets.FromString(line);
        }

        if (io.PromptPassword is null)
        {
            return CliFailure.Usage(
                "no password: standard input is not a terminal to prompt on; use --password-env VAR, --password-file PATH or --password-stdin (its first line)");
        }

        var typed = io.PromptPassword("Password: ");
        return string.IsNullOrEmpty(typed) ? CliFailure.Usage("no password given") : Secrets.FromString(typed);
    }
}
