using System.Text;
using Xunit;

namespace Pop3Functional.Simulator.CSharp.Tests;

/// <summary>
/// The C#-facing helpers themselves: finding presets, changing options without F# copy-and-update,
/// and building content, each checked for what it changes and what it leaves alone.
/// </summary>
public class CSharpSurfaceTests
{
    [Fact]
    public void Presets_are_found_by_name_without_FSharpOption()
    {
        Assert.True(Personalities.TryFind("DOVECOT", out var dovecot));
        Assert.Equal(Personalities.dovecot, dovecot);
        Assert.False(Personalities.TryFind("hmailserver", out _));
        Assert.Equal(
            ["simulator", "dovecot", "courier", "cyrus", "gmail", "exchange", "qmail", "rfc1939"],
            Personalities.Names);
        Assert.All(Personalities.Names, name => Assert.True(Personalities.TryFind(name, out var p) && p.Name == name));
    }

    [Fact]
    public void Personality_With_helpers_change_one_field_each()
    {
        var preset = Personalities.courier;
        var changed = preset
            .WithSaslMechanisms("PLAIN")
            .WithLanguages(("en", "English"), ("fr", "Français"))
            .WithEnforcedLoginDelay(TimeSpan.FromSeconds(10))
            .WithLocksMaildrop(false)
            .WithContinuation(ContinuationStyle.BarePlus)
            .WithResponseCodes(true)
            .WithCapaSupported(false)
            .WithCapabilitiesAfterLogin("TOP");

        Assert.Equal(["PLAIN"], changed.SaslMechanisms);
        Assert.Equal(["en", "fr"], changed.Languages.Select(l => l.Item1)); // an F# list of System.Tuple
        Assert.Equal(TimeSpan.FromSeconds(10), changed.EnforcedLoginDelay);
        Assert.False(changed.LocksMaildrop);
        Assert.Equal(ContinuationStyle.BarePlus, changed.Continuation);
        Assert.True(changed.ResponseCodes);
        Assert.False(changed.CapaSupported);
        Assert.Equal(["TOP"], changed.CapabilitiesAfterLogin);
        // Everything else is the preset's.
        Assert.Equal(preset.Greeting, changed.Greeting);
        Assert.Equal(preset.CapabilitiesBeforeLogin, changed.CapabilitiesBeforeLogin);
        Assert.Equal(preset.RewritesEightBitHeaders, changed.RewritesEightBitHeaders);
        Assert.NotEqual(preset, changed);
        Assert.Equal(preset, Personalities.courier);
    }

    [Fact]
    public void SimulatorOptions_With_helpers_reach_the_server_settings()
    {
        var clock = () => new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var options = SimulatorOptions.Default
            .WithPersonality(Personalities.cyrus)
            .WithFaults(Faults.BareLineFeeds, Faults.Latency(TimeSpan.FromMilliseconds(5)))
            .WithHostname("pop.example.test")
            .WithClock(clock)
            .WithRequireTlsForPlaintextAuth(true)
            .WithSeed(42)
            .WithImplicitTls(false)
            .WithTranscript(true, maxLines: 50);

        Assert.Equal("cyrus", options.Server.Personality.Name);
        Assert.Equal(2, options.Server.Faults.Faults.Length); // FaultPlan.Faults is an F# list
        Assert.Equal("pop.example.test", options.Server.Hostname);
        Assert.Same(clock, options.Server.Clock);
        Assert.True(options.Server.RequireTlsForPlaintextAuth);
        Assert.Equal(42, options.Server.Seed);
        Assert.False(options.EnableImplicitTls);
        Assert.True(options.EnableStls);
        Assert.Equal(50, options.MaxTranscriptLines);
        Assert.True(options.WithFaults().Server.Faults.IsEmpty);
        Assert.False(options.WithStls(false).EnableStls);

        var server = ServerOptions.Create(Personalities.simulator)
            .WithPersonality(Personalities.exchange)
            .WithMaxCommandOctets(512)
            .WithMaxSaslResponseOctets(1024)
            .WithScramIterations(4096 * 2);
        Assert.Equal("exchange", server.Personality.Name);
        Assert.Equal((512, 1024, 8192), (server.MaxCommandOctets, server.MaxSaslResponseOctets, server.ScramIterations));
        Assert.Throws<ArgumentException>(() => server.WithHostname(" "));
    }

    [Fact]
    public void GeneratorOptions_With_helpers_and_Generate()
    {
        var options = GeneratorOptions.Default.WithSeed(3).WithCount(10).WithSizes(2000, 5000).WithLargeMessage(100_000);
        Assert.Equal((3, 10, 2000, 5000L, true, 100_000L),
            (options.Seed, options.Count, options.MinSize, options.MaxSize, options.IncludeLarge, options.LargeSize));
        Assert.False(options.WithoutLargeMessage().IncludeLarge);

        var messages = MailboxGenerator.Generate(options);
        Assert.Equal(10, messages.Count);
        var large = Assert.Single(messages, m => m.Kind == "large");
        Assert.Equal(100_000, large.Content.Length);
        Assert.All(messages.Where(m => m.Kind != "large"), m => Assert.InRange(m.Content.Length, 2000, 5000));
        Assert.Equal(messages.Select(m => m.Uid), MailboxGenerator.Generate(options).Select(m => m.Uid));
        Assert.NotEqual(messages.Select(m => m.Uid), MailboxGenerator.Generate(options.WithSeed(4)).Select(m => m.Uid));
        Assert.Contains("multipart-alternative", MailboxGenerator.Kinds);
        Assert.Throws<ArgumentException>(() => MailboxGenerator.Message("no-such-kind", 1, 5000));
    }

    [Fact]
    public void MessageContent_from_parts()
    {
        var content = MessageContent.Concat(
            MessageContent.OfText("Subject: parts\n\n"),
            MessageContent.OfBytes("one\r\n"u8.ToArray()),
            MessageContent.OfMemory(Encoding.ASCII.GetBytes("two\r\n")));
        Assert.Equal("Subject: parts\r\n\r\none\r\ntwo\r\n", Encoding.ASCII.GetString(content.ToArray()));
        Assert.Equal(content.ToArray().Length, content.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => MessageContent.Generated(-1, 0));
    }
}
