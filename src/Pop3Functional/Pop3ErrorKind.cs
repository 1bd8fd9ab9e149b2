namespace Pop3Functional;

/// <summary>The kinds of <see cref="Pop3Failure"/> (DESIGN §4): never conflated.</summary>
public enum Pop3ErrorKind
{
    /// <summary>The caller asked for something illegal; nothing was sent and the session is unchanged.</summary>
    Usage,

    /// <summary>The server answered -ERR; the session goes on where the protocol allows.</summary>
    Server,

    /// <summary>The server broke the protocol; the session failed for good.</summary>
    Protocol,

    /// <summary>The connection failed (DNS, connect, TLS, reset, a failing sink); it is closed.</summary>
    Transport,

    /// <summary>A time limit ran out; the connection is closed.</summary>
    TimedOut,

    /// <summary>The caller's token fired; the connection is closed.</summary>
    Cancelled,
}
