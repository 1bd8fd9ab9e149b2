namespace Pop3Functional.Core

open System
open System.Text

/// A password, token or other credential. Its ToString is redacted, so a secret can sit in a
/// record, an event or an exception message without leaking; the bytes are wiped on Dispose.
[<Sealed; AllowNullLiteral>]
type Secret private (utf8: byte[]) =
    let mutable disposed = false

    /// Wraps a string secret (stored as UTF-8).
    static member FromString(value: string) : Secret =
        if isNull value then
            nullArg (nameof value)

        new Secret(Encoding.UTF8.GetBytes value)

    /// Wraps secret bytes (copied; the caller may wipe its own array).
    static member FromBytes(value: ReadOnlySpan<byte>) : Secret = new Secret(value.ToArray())

    /// Number of UTF-8 octets in the secret.
    member _.Length = utf8.Length

    /// A copy of the secret's UTF-8 bytes. Deliberately long-winded so that every use is visible.
    member _.RevealUtf8Bytes() : byte[] =
        if disposed then
            raise (ObjectDisposedException(nameof Secret))

        Array.copy utf8

    /// The secret as a string. Deliberately long-winded so that every use is visible.
    member _.RevealString() : string =
        if disposed then
            raise (ObjectDisposedException(nameof Secret))

        Encoding.UTF8.GetString utf8

    /// True once Dispose has wiped the secret; a disposed secret can no longer be sent.
    member _.IsDisposed = disposed

    /// True when the secret holds a CR, LF or NUL byte (it could split a command line).
    member _.HasLineBreakOrNul =
        utf8 |> Array.exists (fun b -> b = 13uy || b = 10uy || b = 0uy)

    /// Always "********", so printing, logging or interpolating a secret never reveals it.
    override _.ToString() = "********"

    interface IDisposable with
        member _.Dispose() =
            Array.Clear utf8
            disposed <- true
