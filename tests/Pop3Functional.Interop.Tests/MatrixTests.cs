using LanguageExt;
using LanguageExt.Common;
using Pop3Functional.Core;
using Xunit;

namespace Pop3Functional.Interop.Tests;

/// <summary>
/// The interop matrix of issue #7: {Dovecot, Courier, Cyrus} × {plain, STLS, implicit TLS} ×
/// {USER/PASS, APOP where the greeting offers it} × {pipelined, lock-step} × {with and without UTF8
/// where offered}, plus the SASL rows of issue #8 (each mechanism the server offers and the client
/// implements, pipelined and ASCII only). Every cell logs in to its own account (seeded with the
/// same mailbox), so the cells are independent.
/// </summary>
[Collection(RealServersCollection.Name)]
public sealed class MatrixTests
{
    /// <summary>The first deletions, undone by RSET.</summary>
    private static readonly ulong[] DeletedThenReset = [1, 2, 30];

    /// <summary>The deletions QUIT commits: an 8-bit header message, a dot-lines one and the 3 MiB attachment.</summary>
    private static readonly ulong[] Deleted = [3, 12, 31];

    /// <summary>Every cell that exists (docs/interop.md says why the others do not).</summary>
    public static TheoryData<Server, Tls, string, bool, bool> Cells()
    {
        var data = new TheoryData<Server, Tls, string, bool, bool>();
        foreach (var server in Enum.GetValues<Server>())
        {
            // Courier's greeting has no APOP timestamp; only Courier offers UTF8.
            string[] logins = server == Server.Courier ? ["user"] : ["user", "apop"];
            string[] sasl = SaslLogins(server);
            bool[] utf8 = server == Server.Courier ? [false, true] : [false];
            foreach (var tls in Enum.GetValues<Tls>())
            {
                // SASL rows: pipelined and ASCII only (CI time); -PLUS over TLS only, on Cyrus's
                // TLS 1.2 listeners (tls-unique: the one binding Cyrus 3.6 accepts, docs/interop.md).
                foreach (var mechanism in sasl)
                {
                    if (!(mechanism.EndsWith("-plus", StringComparison.Ordinal) && tls == Tls.Plain))
                    {
                        data.Add(server, tls, mechanism, true, false);
                    }
                }

                foreach (var login in logins)
                {
                    // APOP after STLS is refused by the client: ApopAfterStlsTests asserts that.
                    if (login == "apop" && tls == Tls.Stls)
                    {
                        continue;
                    }

                    foreach (var pipelined in new[] { true, false })
                    {
                        foreach (var u in utf8)
                        {
                            data.Add(server, tls, login, pipelined, u);
                        }
                    }
                }
            }
        }

        return data;
    }

    /// <summary>The SASL mechanisms each server offers that the client implements (lower case, as in the account names).</summary>
    internal static string[] SaslLogins(Server server) => server switch
    {
        Server.Dovecot => ["plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256"],
        // Courier also offers CRAM-SHA1 and CRAM-SHA256, which the client does not implement.
        Server.Courier => ["plain", "login", "cram-md5"],
        _ => ["plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256", "scram-sha-1-plus", "scram-sha-256-plus"],
    };

    internal static bool IsSasl(string login) => login is not ("user" or "apop");

    internal static Pop3Mechanism MechanismOf(string login) => login switch
    {
        "apop" => Pop3Mechanism.Apop,
        "user" => Pop3Mechanism.UserPass,
        _ => Pop3Mechanism.Sasl(login),
    };

    internal static string AccountName(Tls tls, string login, bool pipelined, bool utf8) =>
        $"{login}-{TlsName(tls)}-{(pipelined ? "pipe" : "step")}-{(utf8 ? "utf8" : "ascii")}";

    internal static string TlsName(Tls tls) => tls switch
    {
        Tls.Plain => "plain",
        Tls.Stls => "stls",
        _ => "tls",
    };

    [Theory]
    [MemberData(nameof(Cells))]
    public async Task Cell(Server server, Tls tls, string login, bool pipelined, bool utf8)
    {
        var servers = InteropServers.Require();
        var ct = TestContext.Current.CancellationToken;
        var account = servers.Account(server, AccountName(tls, login, pipelined, utf8));
        var seeded = Expectations.Seeded;
        var log = new ProtocolRecorder();
        var plus = login.EndsWith("-plus", StringComparison.Ordinal);
        var builder = servers.Builder(server, tls, log, tls12Only: plus)
            .WithCredentials(account, Secrets.FromString(servers.Password))
            .WithMechanism(MechanismOf(login));
        builder = pipelined ? builder : builder.WithoutPipelining();
        builder = utf8 ? builder.WithUtf8() : builder;

        // ---- first session: look at everything, delete some, undo, delete again, QUIT ----
        var session = Ok(await builder.OpenAsync(ct), log, "open");
        List<string> uids;
        await using (session)
        {
            Assert.Equal(tls != Tls.Plain, session.IsTlsActive);
            // The timestamp is kept, except after STLS (which discards it); every server offers PIPELINING,
            // so the lock-step cells are lock-step by the client's choice (WithoutPipelining).
            Assert.Equal(server != Server.Courier && tls != Tls.Stls, session.Greeting.ApopAvailable);
            Assert.True(session.Capabilities.Pipelining);
            if (IsSasl(login))
            {
                // One AUTH naming the mechanism, nothing else that logs in.
                Assert.Equal([$"AUTH {login.ToUpperInvariant()}"], log.Commands.Where(c => c.StartsWith("AUTH", StringComparison.Ordinal)).Select(Verb));
                Assert.Equal(0, log.Sent("USER") + log.Sent("PASS") + log.Sent("APOP"));
            }
            else
            {
                Assert.Equal(1, log.Sent(login == "apop" ? "APOP" : "PASS"));
                Assert.Equal(0, log.Sent(login == "apop" ? "PASS" : "APOP") + log.Sent("AUTH"));
            }

            Assert.DoesNotContain(log.Lines, line => line.Contains(servers.Password, StringComparison.Ordinal));
            Assert.Equal(utf8 ? 1 : 0, log.Sent("UTF8"));
            Assert.Equal(tls == Tls.Stls ? 1 : 0, log.Sent("STLS"));

            var stat = Ok(await session.StatAsync(ct), log, "STAT");
            Assert.Equal((ulong)seeded.Count, stat.Count);

            var list = Ok(await session.ListAsync(ct), log, "LIST").ToList();
            Assert.Equal(Enumerable.Range(1, seeded.Count).Select(n => (ulong)n), list.Select(e => e.Number));
            Assert.Equal(stat.Octets, list.Aggregate(0UL, (sum, e) => sum + e.Octets));
            foreach (var m in seeded)
            {
                Expectations.CheckListed(server, m, list[m.Number - 1].Octets);
            }

            var uidl = Ok(await session.UidlAsync(ct), log, "UIDL").ToList();
            Assert.Equal(list.Select(e => e.Number), uidl.Select(e => e.Number));
            uids = uidl.Select(e => e.Uid.Value).ToList();
            Assert.Equal(uids.Count, uids.Distinct(StringComparer.Ordinal).Count());

            var numbers = seeded.Select(m => (ulong)m.Number).ToList();
            var tops = pipelined
                ? await Many(session.TopManyAsync(numbers, 0, Sink(out var topBuffers), ct), topBuffers, log, "TOP")
                : await OneByOne(numbers, (n, sink) => session.TopAsync(n, 0, sink, ct), log, "TOP");
            foreach (var m in seeded)
            {
                Expectations.CheckTop(server, utf8, m, tops[(ulong)m.Number].Octets);
            }

            var messages = pipelined
                ? await Many(session.RetrieveManyAsync(numbers, Sink(out var bodyBuffers), ct), bodyBuffers, log, "RETR")
                : await OneByOne(numbers, (n, sink) => session.RetrieveAsync(n, sink, ct), log, "RETR");
            foreach (var m in seeded)
            {
                var (octets, retrieval) = messages[(ulong)m.Number];
                Expectations.CheckRetrieved(server, utf8, m, octets, retrieval, list[m.Number - 1].Octets);
            }

            foreach (var n in DeletedThenReset)
            {
                Ok(await session.DeleteAsync(n, ct), log, $"DELE {n}");
            }

            Ok(await session.ResetAsync(ct), log, "RSET");
            // The server itself lists them again (LIST omits messages marked deleted).
            Assert.Equal(seeded.Count, Ok(await session.ListAsync(ct), log, "LIST after RSET").Count);
            foreach (var n in Deleted)
            {
                Ok(await session.DeleteAsync(n, ct), log, $"DELE {n}");
            }

            var quit = Ok(await session.QuitAsync(ct), log, "QUIT");
            Assert.True(quit.UpdateCompleted, "QUIT did not report the update as completed.");
            Assert.Equal(Deleted, quit.DeletionsCommitted.OrderBy(n => n));
        }

        // ---- second session: exactly those are gone ----
        var again = Ok(await builder.OpenAsync(ct), log, "reopen");
        await using (again)
        {
            var stat = Ok(await again.StatAsync(ct), log, "STAT after reconnect");
            Assert.Equal((ulong)(seeded.Count - Deleted.Length), stat.Count);
            var remaining = Ok(await again.UidlAsync(ct), log, "UIDL after reconnect").Select(e => e.Uid.Value).ToList();
            var expected = uids.Where((_, i) => !Deleted.Contains((ulong)i + 1)).ToList();
            Assert.Equal(expected, remaining);
            Ok(await again.QuitAsync(ct), log, "QUIT after reconnect");
        }
    }

    /// <summary>"AUTH MECHANISM" of an AUTH command line (the initial response, redacted or not, dropped).</summary>
    internal static string Verb(string command) => string.Join(' ', command.Split(' ').Take(2));

    internal static T Ok<T>(Fin<T> result, ProtocolRecorder log, string what) =>
        result.Match(
            Succ: value => value,
            Fail: error =>
            {
                Assert.Fail($"{what} failed ({error.Code}): {error.Message}\nTranscript:\n{log.Transcript}");
                return default!;
            });

    internal static Pop3Failure FailureOf<T>(Fin<T> result, ProtocolRecorder log)
    {
        Assert.True(result.IsFail, $"Expected a failure, the call succeeded.\nTranscript:\n{log.Transcript}");
        return Assert.IsType<Pop3Failure>((Error)result);
    }

    private static Func<ulong, ReadOnlyMemory<byte>, CancellationToken, ValueTask> Sink(out Dictionary<ulong, MemoryStream> buffers)
    {
        var map = new Dictionary<ulong, MemoryStream>();
        buffers = map;
        return (n, bytes, _) =>
        {
            if (!map.TryGetValue(n, out var buffer))
            {
                map[n] = buffer = new MemoryStream();
            }

            buffer.Write(bytes.Span);
            return ValueTask.CompletedTask;
        };
    }

    private static async Task<Dictionary<ulong, (byte[] Octets, Retrieval Retrieval)>> Many(
        IAsyncEnumerable<Fin<Retrieval>> results, Dictionary<ulong, MemoryStream> buffers, ProtocolRecorder log, string what)
    {
        var done = new Dictionary<ulong, (byte[], Retrieval)>();
        await foreach (var result in results)
        {
            var retrieval = Ok(result, log, what);
            var octets = buffers.TryGetValue(retrieval.Message, out var b) ? b.ToArray() : [];
            done.Add(retrieval.Message, (octets, retrieval));
        }

        Assert.Equal(Expectations.Seeded.Count, done.Count);
        return done;
    }

    private static async Task<Dictionary<ulong, (byte[] Octets, Retrieval Retrieval)>> OneByOne(
        IEnumerable<ulong> numbers,
        Func<ulong, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>, Task<Fin<Retrieval>>> call,
        ProtocolRecorder log,
        string what)
    {
        var done = new Dictionary<ulong, (byte[], Retrieval)>();
        foreach (var n in numbers)
        {
            var buffer = new MemoryStream();
            var retrieval = Ok(
                await call(n, (bytes, _) =>
                {
                    buffer.Write(bytes.Span);
                    return ValueTask.CompletedTask;
                }),
                log,
                $"{what} {n}");
            done.Add(n, (buffer.ToArray(), retrieval));
        }

        return done;
    }
}
