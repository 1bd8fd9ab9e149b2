namespace Pop3Functional;

/// <summary>
/// How the session logs in. <see cref="Auto"/> by default: APOP when the greeting offers it and
/// the security rules allow it, USER/PASS otherwise, never a weaker method after a failure.
/// Mechanisms are named values rather than an enum, so SASL mechanisms can join by name later
/// without changing any caller.
/// </summary>
public sealed class Pop3Mechanism : IEquatable<Pop3Mechanism>
{
    private Pop3Mechanism(string name, bool needsPassword)
    {
        Name = name;
        NeedsPassword = needsPassword;
    }

    /// <summary>The shell chooses: APOP when offered and allowed, else USER/PASS (no fallback after a failure).</summary>
    public static Pop3Mechanism Auto { get; } = new("AUTO", true);

    /// <summary>USER and PASS (RFC 1939 §7): the password crosses the wire, so only over TLS unless plaintext credentials were allowed.</summary>
    public static Pop3Mechanism UserPass { get; } = new("USER", true);

    /// <summary>APOP (RFC 1939 §7): an MD5 digest of the greeting's timestamp and the password; needs a strict timestamp in the greeting.</summary>
    public static Pop3Mechanism Apop { get; } = new("APOP", true);

    /// <summary>RPOP (RFC 1081): a trusted host vouches for the user; no password. For poplib parity; almost no server accepts it.</summary>
    public static Pop3Mechanism Rpop { get; } = new("RPOP", false);

    /// <summary>The mechanism's name ("AUTO", "USER", "APOP", "RPOP").</summary>
    public string Name { get; }

    /// <summary>True when the mechanism needs a password (all but RPOP).</summary>
    public bool NeedsPassword { get; }

    /// <inheritdoc/>
    public bool Equals(Pop3Mechanism? other) => other is not null && string.Equals(Name, other.Name, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Pop3Mechanism);

    /// <inheritdoc/>
    public override int GetHashCode() => StringComparer.OrdinalIgnoreCase.GetHashCode(Name);

    /// <summary>The name.</summary>
    public override string ToString() => Name;
}
