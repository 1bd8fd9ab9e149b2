using System.Text;
using Pop3Functional.Core;
using Xunit;
using static Pop3Functional.Core.CSharp.Tests.MachineDriver;

namespace Pop3Functional.Core.CSharp.Tests;

/// <summary>
/// Pop3Machine driven by hand from C#, the way a C# shell would: feed the server's bytes, submit
/// requests, and drain the outputs after each step. These tests are about the C# surface (names,
/// types, nulls, overloads) as much as about the dialogue, which the F# tests cover in depth.
/// </summary>
public class Pop3MachineTests
{
    private const string Greeting = "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n";
    private const string Capa = "+OK Capability list follows\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n";

    [Fact]
    public void Greeting_is_reported_and_answered_with_CAPA()
    {
        var machine = Pop3Machine.Create(TlsMode.NoTls, false);
        Assert.Empty(Drain(machine));

        var outputs = Feed(machine, Greeting);

        var greeting = Assert.Single(outputs, o => o.EventKind == Pop3EventKind.Greeting);
        Assert.Equal(Pop3OutputKind.Event, greeting.Kind);
        Assert.Equal("POP3 ready <1896.697170952@dbc.mtview.ca.us>", greeting.Text);
        Assert.True(greeting.ApopAvailable);
        Assert.Equal(["CAPA\r\n"], Sent(outputs));
    }

    [Fact]
    public void A_whole_plaintext_session_from_greeting_to_QUIT()
    {
        var machine = Pop3Machine.Create(TlsMode.NoTls, allowPlaintextCredentials: true);

        Assert.Equal(["CAPA\r\n"], Sent(Feed(machine, Greeting)));

        var ready = Feed(machine, Capa);
        var authorization = Assert.Single(ready, o => o.EventKind == Pop3EventKind.AuthorizationReady);
        Assert.True(authorization.Capabilities.User);
        Assert.True(authorization.Capabilities.Top);
        Assert.Empty(Sent(ready));

        Assert.Equal(["USER bob\r\n"], Sent(Submit(machine, 1, Pop3Request.User("bob"))));
        Assert.Contains(Feed(machine, "+OK bob is welcome\r\n"), o => IsAnswer(o, 1));

        Assert.Equal(["PASS secret\r\n"], Sent(Submit(machine, 2, Pop3Request.Pass(Secret.FromString("secret")))));

        // After login the core asks CAPA again and STAT for the snapshot; the login is answered
        // only once the snapshot is known.
        var afterPass = Feed(machine, "+OK maildrop locked and ready\r\n");
        Assert.Equal(["CAPA\r\n"], Sent(afterPass));
        Assert.DoesNotContain(afterPass, o => IsAnswer(o, 2));
        Assert.Equal(["STAT\r\n"], Sent(Feed(machine, Capa)));

        var login = Assert.Single(Feed(machine, "+OK 2 320\r\n"), o => IsAnswer(o, 2));
        Assert.True(login.LoggedIn);
        Assert.Equal(2UL, login.Count);
        Assert.Equal(320UL, login.Octets);
        Assert.Equal("Transaction", machine.State);
        Assert.Equal(2UL, machine.MessageCount);

        Assert.Equal(["RETR 1\r\n"], Sent(Submit(machine, 3, Pop3Request.Retr(1))));
        // The body arrives in two reads that split a stuffed line; slices are copied per feed.
        var retr = Feed(machine, "+OK 120 octets\r\nSubject: hi\r\n\r\n..dot");
        retr.AddRange(Feed(machine, " line\r\nend\r\n.\r\n"));
        Assert.Equal("Subject: hi\r\n\r\n.dot line\r\nend\r\n", Body(retr, 3));
        var ended = Assert.Single(retr, o => o.EventKind == Pop3EventKind.BodyEnded);
        Assert.Equal(3L, ended.RequestId);
        Assert.Equal((ulong)"Subject: hi\r\n\r\n.dot line\r\nend\r\n".Length, ended.Octets);

        Assert.Equal(["DELE 1\r\n"], Sent(Submit(machine, 4, Pop3Request.Dele(1))));
        Assert.Contains(Feed(machine, "+OK message 1 deleted\r\n"), o => IsAnswer(o, 4));

        Assert.Equal(["QUIT\r\n"], Sent(Submit(machine, 5, Pop3Request.Quit())));
        var quitOutputs = Feed(machine, "+OK dewey POP3 server signing off\r\n");
        var quit = Assert.Single(quitOutputs, o => IsAnswer(o, 5));
        Assert.True(quit.UpdateCompleted);
        Assert.Equal([1UL], quit.DeletionsCommitted);
        Assert.Contains(quitOutputs, o => o.Kind == Pop3OutputKind.Close);
        Assert.True(machine.IsClosed);
    }

    [Fact]
    public void A_body_fed_one_byte_at_a_time_arrives_whole_and_unstuffed()
    {
        var machine = LoggedIn(Pop3Machine.Create(TlsMode.NoTls, true));
        Submit(machine, 3, Pop3Request.Retr(1));

        var reply = "+OK\r\nline one\r\n..\r\n...two dots\r\n.\r\n"u8.ToArray();
        var outputs = new List<Pop3Output>();
        for (var i = 0; i < reply.Length; i++)
        {
            // The array overload: offset and count into a buffer a shell would reuse.
            machine.Feed(reply, i, 1);
            outputs.AddRange(Drain(machine));
        }

        Assert.Equal("line one\r\n.\r\n..two dots\r\n", Body(outputs, 3));
        Assert.Single(outputs, o => o.EventKind == Pop3EventKind.BodyEnded && o.RequestId == 3);
    }

    [Fact]
    public void A_user_name_with_CR_LF_is_refused_before_anything_is_sent()
    {
        var machine = Authorized(Pop3Machine.Create(TlsMode.NoTls, true));

        var outputs = Submit(machine, 1, Pop3Request.User("bob\r\nDELE 1"));

        Assert.Empty(Sent(outputs));
        var refused = Assert.Single(outputs);
        Assert.Equal(Pop3EventKind.Refused, refused.EventKind);
        Assert.Equal(1L, refused.RequestId);
        Assert.Equal(Pop3ErrorKind.Usage, refused.Failure.Kind);
        Assert.Equal("InvalidArgument", refused.Failure.Code);
        Assert.Equal("USER", refused.Failure.Command);
        Assert.Contains("CR, LF or NUL", refused.Failure.Message);

        // A refusal leaves the session as it was: the corrected request goes out.
        Assert.Equal(["USER bob\r\n"], Sent(Submit(machine, 2, Pop3Request.User("bob"))));
    }

    [Fact]
    public void A_password_over_plaintext_needs_the_explicit_opt_in()
    {
        var machine = Authorized(Pop3Machine.Create(TlsMode.NoTls, allowPlaintextCredentials: false));
        Submit(machine, 1, Pop3Request.User("bob"));
        Feed(machine, "+OK\r\n");

        var outputs = Submit(machine, 2, Pop3Request.Pass(Secret.FromString("secret")));

        Assert.Empty(Sent(outputs));
        var refused = Assert.Single(outputs, o => o.EventKind == Pop3EventKind.Refused);
        Assert.Equal(Pop3ErrorKind.Usage, refused.Failure.Kind);
        Assert.Equal("PlaintextCredentials", refused.Failure.Code);
    }

    [Fact]
    public void A_server_error_with_a_response_code_is_a_rejection_the_session_survives()
    {
        var machine = Authorized(Pop3Machine.Create(TlsMode.NoTls, true));
        Submit(machine, 1, Pop3Request.User("bob"));
        Feed(machine, "+OK\r\n");
        Submit(machine, 2, Pop3Request.Pass(Secret.FromString("secret")));

        var outputs = Feed(machine, "-ERR [IN-USE] locked\r\n");

        var rejected = Assert.Single(outputs, o => o.EventKind == Pop3EventKind.Rejected);
        Assert.Equal(2L, rejected.RequestId);
        Assert.Equal(Pop3ErrorKind.Server, rejected.Failure.Kind);
        Assert.Equal("IN-USE", rejected.Failure.Code);
        Assert.Equal("PASS", rejected.Failure.Command);
        Assert.Equal("locked", rejected.Failure.ServerText);
        Assert.False(machine.IsFailed);
        Assert.Equal("Authorization", machine.State);
        Assert.Null(machine.MessageCount);
    }

    [Fact]
    public void StartTlsRequired_sends_STLS_itself_and_asks_CAPA_again_after_the_handshake()
    {
        var machine = Pop3Machine.Create(TlsMode.StartTlsRequired, false);
        Assert.False(machine.IsTlsActive);

        Assert.Equal(["CAPA\r\n"], Sent(Feed(machine, Greeting)));
        var afterCapa = Feed(machine, "+OK\r\nSTLS\r\nUSER\r\n.\r\n");
        Assert.Equal(["STLS\r\n"], Sent(afterCapa));
        Assert.DoesNotContain(afterCapa, o => o.EventKind == Pop3EventKind.AuthorizationReady);

        var afterStls = Feed(machine, "+OK begin TLS\r\n");
        Assert.Contains(afterStls, o => o.Kind == Pop3OutputKind.StartTls);
        Assert.Empty(Sent(afterStls));

        machine.TlsEstablished(null!);
        Assert.True(machine.IsTlsActive);
        Assert.Equal(["CAPA\r\n"], Sent(Drain(machine)));

        // The capabilities learnt in plaintext are forgotten (RFC 2595 §4): these are the new ones.
        var ready = Assert.Single(Feed(machine, "+OK\r\nUSER\r\nUIDL\r\n.\r\n"), o => o.EventKind == Pop3EventKind.AuthorizationReady);
        Assert.True(ready.Capabilities.Uidl);
        Assert.False(ready.Capabilities.Stls);
        // Over TLS, no opt-in is needed for the password.
        Submit(machine, 1, Pop3Request.User("bob"));
        Feed(machine, "+OK\r\n");
        Assert.Equal(["PASS secret\r\n"], Sent(Submit(machine, 2, Pop3Request.Pass(Secret.FromString("secret")))));
    }

    [Fact]
    public void StartTlsRequired_fails_when_the_server_offers_no_STLS()
    {
        var machine = Pop3Machine.Create(TlsMode.StartTlsRequired, false);
        Feed(machine, Greeting);

        var outputs = Feed(machine, Capa);

        Assert.Empty(Sent(outputs));
        var failed = Assert.Single(outputs, o => o.EventKind == Pop3EventKind.Failed);
        Assert.Equal(Pop3ErrorKind.Protocol, failed.Failure.Kind);
        Assert.Equal("TlsUnavailable", failed.Failure.Code);
        Assert.True(machine.IsFailed);
    }

    [Fact]
    public void The_log_text_of_PASS_hides_the_password_the_bytes_carry()
    {
        var machine = Authorized(Pop3Machine.Create(TlsMode.NoTls, true));
        Submit(machine, 1, Pop3Request.User("bob"));
        Feed(machine, "+OK\r\n");

        var pass = Assert.Single(Submit(machine, 2, Pop3Request.Pass(Secret.FromString("hunter2"))));

        Assert.Equal(Pop3OutputKind.Send, pass.Kind);
        Assert.Equal("PASS hunter2\r\n", Encoding.ASCII.GetString(pass.Bytes.Span));
        Assert.Equal("PASS ********", pass.LogText);
        Assert.Equal("Send PASS ********", pass.ToString());
        Assert.DoesNotContain("hunter2", Secret.FromString("hunter2").ToString());
    }

    [Fact]
    public void The_default_machine_is_implicit_TLS_and_waits_for_the_greeting()
    {
        var machine = new Pop3Machine();

        Assert.True(machine.IsTlsActive);
        Assert.Equal(0, machine.PendingOutputs);

        var outputs = Submit(machine, 1, Pop3Request.Stat());
        var refused = Assert.Single(outputs);
        Assert.Equal(Pop3EventKind.Refused, refused.EventKind);
        Assert.Equal("WrongState", refused.Failure.Code);
        Assert.Throws<ArgumentNullException>(() => machine.Submit(2, null!));
    }

    [Fact]
    public void The_server_closing_during_a_body_fails_the_session_and_aborts_the_request()
    {
        var machine = LoggedIn(Pop3Machine.Create(TlsMode.NoTls, true));
        Submit(machine, 3, Pop3Request.Retr(1));
        Feed(machine, "+OK\r\nhalf a mess");

        machine.FeedEndOfStream();
        var outputs = Drain(machine);

        var aborted = Assert.Single(outputs, o => o.EventKind == Pop3EventKind.Aborted);
        Assert.Equal(3L, aborted.RequestId);
        Assert.Equal("ConnectionClosed", aborted.Failure.Code);
        Assert.Contains("incomplete", aborted.Failure.Message);
        Assert.True(machine.IsFailed);
    }

    // Driving helpers. Each returns the outputs the step produced, drained from the machine.

    /// <summary>
    /// Takes every pending output. BodyData slices point into the fed bytes and are valid only
    /// until the next Feed, so they are copied here.
    /// </summary>

    private static string Body(IEnumerable<Pop3Output> outputs, long requestId) =>
        string.Concat(outputs
            .Where(o => o is { EventKind: Pop3EventKind.BodyData } && o.RequestId == requestId)
            .Select(o => Encoding.Latin1.GetString(o.Bytes.Span)));

    private static bool IsAnswer(Pop3Output output, long requestId) =>
        output is { Kind: Pop3OutputKind.Event, EventKind: Pop3EventKind.Answered } && output.RequestId == requestId;

    /// <summary>Greeting and CAPA done: ready for USER.</summary>
    private static Pop3Machine Authorized(Pop3Machine machine)
    {
        Feed(machine, Greeting);
        Assert.Contains(Feed(machine, Capa), o => o.EventKind == Pop3EventKind.AuthorizationReady);
        return machine;
    }

    /// <summary>Logged in to a maildrop of two messages; request ids 1 and 2 are used.</summary>
    private static Pop3Machine LoggedIn(Pop3Machine machine)
    {
        Authorized(machine);
        Submit(machine, 1, Pop3Request.User("bob"));
        Feed(machine, "+OK\r\n");
        Submit(machine, 2, Pop3Request.Pass(Secret.FromString("secret")));
        Feed(machine, "+OK\r\n");
        Feed(machine, Capa);
        Assert.Contains(Feed(machine, "+OK 2 320\r\n"), o => o is { LoggedIn: true });
        return machine;
    }
}
