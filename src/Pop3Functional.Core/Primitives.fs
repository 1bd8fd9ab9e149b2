namespace Pop3Functional.Core

open System

/// Identifies a request and every event that belongs to it. Callers use ids of 1 and above;
/// the core's own commands (CAPA after the greeting, STAT after login, ...) use negative ids,
/// and 0 marks an event that belongs to no request.
type RequestId = int64

/// A unique-id listing token: 1 to 70 octets in 0x21..0x7E (RFC 1939 §7).
[<Sealed>]
type MessageUid private (value: string) =
    /// The UID as sent by the server.
    member _.Value = value

    /// True when the value is 1 to 70 characters, each in 0x21..0x7E (RFC 1939 §7).
    static member IsValid(value: string) =
        not (isNull value)
        && value.Length >= 1
        && value.Length <= 70
        && value |> Seq.forall (fun c -> c >= '!' && c <= '~')

    /// Builds a UID if it satisfies RFC 1939 §7.
    static member TryCreate(value: string) : MessageUid option =
        if MessageUid.IsValid value then
            Some(MessageUid value)
        else
            None

    /// Builds a UID from any printable token (used only when the caller opted into long UIDs).
    static member internal CreateUnchecked(value: string) = MessageUid value

    /// The UID as sent by the server, so a UID prints as itself.
    override _.ToString() = value

    /// Ordinal, case-sensitive equality: UIDs are opaque octet strings (RFC 1939 §7).
    override _.Equals(other: obj) =
        match other with
        | :? MessageUid as o -> String.Equals(value, o.Value, StringComparison.Ordinal)
        | _ -> false

    /// An ordinal hash, consistent with Equals.
    override _.GetHashCode() =
        StringComparer.Ordinal.GetHashCode value

    interface IEquatable<MessageUid> with
        member _.Equals(other: MessageUid) =
            not (isNull (box other))
            && String.Equals(value, other.Value, StringComparison.Ordinal)

    interface IComparable with
        member _.CompareTo(other: obj) =
            match other with
            | :? MessageUid as o -> String.CompareOrdinal(value, o.Value)
            | _ -> 1

/// A response code in brackets after +OK or -ERR (RFC 2449 §8, RFC 3206, RFC 6856).
[<RequireQualifiedAccess>]
type ResponseCode =
    /// [IN-USE]: the maildrop is locked by another session (RFC 2449 §8.1.1).
    | InUse
    /// [LOGIN-DELAY]: logged in too soon after the previous session (RFC 2449 §8.1.2).
    | LoginDelay
    /// [SYS/TEMP]: a temporary system failure; retry later (RFC 3206 §4).
    | SysTemp
    /// [SYS/PERM]: a permanent system failure; retrying will not help (RFC 3206 §4).
    | SysPerm
    /// [AUTH]: the credentials were wrong (RFC 3206 §5).
    | Auth
    /// [UTF8]: the request needs UTF-8 mode (RFC 6856 §2).
    | Utf8
    /// Any other code, kept verbatim without the brackets.
    | Other of string

    /// The code as it appears on the wire, without brackets.
    member this.Text =
        match this with
        | InUse -> "IN-USE"
        | LoginDelay -> "LOGIN-DELAY"
        | SysTemp -> "SYS/TEMP"
        | SysPerm -> "SYS/PERM"
        | Auth -> "AUTH"
        | Utf8 -> "UTF8"
        | Other s -> s

    /// Maps wire text to a code; comparison is case-insensitive as RFC 2449 §8 intends.
    static member Parse(text: string) =
        match text.ToUpperInvariant() with
        | "IN-USE" -> InUse
        | "LOGIN-DELAY" -> LoginDelay
        | "SYS/TEMP" -> SysTemp
        | "SYS/PERM" -> SysPerm
        | "AUTH" -> Auth
        | "UTF8" -> Utf8
        | _ -> Other text

    /// The code in brackets as it appears on the wire ("[IN-USE]").
    override this.ToString() = "[" + this.Text + "]"
