namespace Pop3Functional.Core

open System
open System.Security.Cryptography
open System.Text

/// The hash a SCRAM mechanism is built on (RFC 5802, RFC 7677).
[<RequireQualifiedAccess>]
type internal ScramHash =
    /// SCRAM-SHA-1 (RFC 5802).
    | Sha1
    /// SCRAM-SHA-256 (RFC 7677).
    | Sha256

/// What server-first-message carries (RFC 5802 §5.1, §7).
type internal ScramServerFirst =
    {
        /// The client nonce followed by the server's.
        Nonce: string
        Salt: byte[]
        Iterations: int
    }

/// The client computations of SCRAM (RFC 5802 §3, §5, §7): pure functions over the messages.
[<RequireQualifiedAccess>]
module internal Scram =
    /// RFC 7677 §4 asks for at least 4096; a server asking for fewer makes a captured proof cheap
    /// to attack offline, so fewer is refused.
    [<Literal>]
    let MinIterations = 4096

    /// A hostile server must not make the client compute for minutes: PBKDF2 with a million
    /// iterations takes well under a second here, ten times what OWASP asks of servers for SHA-256.
    [<Literal>]
    let MaxIterations = 1_000_000

    let hashLength hash =
        match hash with
        | ScramHash.Sha1 -> 20
        | ScramHash.Sha256 -> 32

    let hmac hash (key: byte[]) (data: byte[]) =
        match hash with
        | ScramHash.Sha1 -> HMACSHA1.HashData(key, data)
        | ScramHash.Sha256 -> HMACSHA256.HashData(key, data)

    let digest hash (data: byte[]) =
        match hash with
        | ScramHash.Sha1 -> SHA1.HashData data
        | ScramHash.Sha256 -> SHA256.HashData data

    /// Hi (RFC 5802 §2.2) is PBKDF2 (RFC 8018) with HMAC as the PRF and one block of output.
    let hi hash (password: byte[]) (salt: byte[]) (iterations: int) =
        let name =
            match hash with
            | ScramHash.Sha1 -> HashAlgorithmName.SHA1
            | ScramHash.Sha256 -> HashAlgorithmName.SHA256

        Rfc2898DeriveBytes.Pbkdf2(password, salt, iterations, name, hashLength hash)

    /// saslname (RFC 5802 §5.1): ',' and '=' are written =2C and =3D.
    let escapeName (name: string) =
        name.Replace("=", "=3D").Replace(",", "=2C")

    /// printable (RFC 5802 §7): %x21-2B / %x2D-7E, what a nonce is made of.
    let isNonceChar (c: char) = c >= '!' && c <= '~' && c <> ','

    /// Base64 that decodes and encodes back to the same text: no whitespace, no stray bits.
    let strictBase64 (text: string) =
        let buffer = Array.zeroCreate<byte>((text.Length + 3) / 4 * 3)
        let mutable written = 0

        if text.Length > 0 && Convert.TryFromBase64String(text, Span buffer, &written) then
            let decoded = Array.sub buffer 0 written

            if Convert.ToBase64String decoded = text then
                Some decoded
            else
                None
        else
            None

    let private valueOf (attribute: char) (part: string) =
        if part.Length >= 2 && part[0] = attribute && part[1] = '=' then
            Some(part.Substring 2)
        else
            None

    let private isExtension (part: string) =
        part.Length >= 2 && Char.IsAsciiLetter part[0] && part[1] = '='

    let private isPrintableAscii (message: byte[]) =
        message |> Array.forall (fun b -> b >= 0x20uy && b <= 0x7Euy)

    /// Parses server-first-message (RFC 5802 §7) and checks it against the client nonce.
    let parseServerFirst (clientNonce: string) (message: byte[]) : Result<ScramServerFirst, string> =
        if not (isPrintableAscii message) then
            Error "server-first-message is not printable ASCII (RFC 5802 §7)"
        else
            let parts = (Encoding.ASCII.GetString message).Split ','

            if parts[0].StartsWith "m=" then
                // RFC 5802 §5.1: a mandatory extension the client does not know fails the exchange.
                Error "server-first-message asks for a mandatory extension (m=), which is not supported (RFC 5802 §5.1)"
            elif parts.Length < 3 then
                Error "server-first-message is not r=, s= and i= (RFC 5802 §7)"
            elif parts[3..] |> Array.exists (isExtension >> not) then
                Error "server-first-message has an extension that is not attr=value (RFC 5802 §7)"
            else
                match valueOf 'r' parts[0], valueOf 's' parts[1], valueOf 'i' parts[2] with
                | None, _, _
                | _, None, _
                | _, _, None -> Error "server-first-message is not r=, s= and i= in that order (RFC 5802 §7)"
                | Some nonce, Some salt, Some iterations ->
                    let digits =
                        iterations.Length > 0
                        && iterations.Length <= 9
                        && iterations |> Seq.forall Char.IsAsciiDigit

                    if not (nonce.StartsWith(clientNonce, StringComparison.Ordinal)) then
                        Error "the server's nonce does not start with the client's (RFC 5802 §5.1)"
                    elif nonce.Length = clientNonce.Length then
                        Error "the server added nothing to the client's nonce (RFC 5802 §5.1)"
                    elif not (nonce |> Seq.forall isNonceChar) then
                        Error "the server's nonce holds a character that is not printable (RFC 5802 §7)"
                    elif not digits then
                        Error $"the iteration count {Err.quote iterations} is not a number (RFC 5802 §7)"
                    else
                        let count = int iterations

                        if count < MinIterations || count > MaxIterations then
                            Error
                                $"the iteration count {count} is outside {MinIterations}..{MaxIterations} (RFC 7677 §4: at least 4096; more would stall the client)"
                        else
                            match strictBase64 salt with
                            | None -> Error "the salt is not base64 (RFC 5802 §7)"
                            | Some salt ->
                                Ok
                                    {
                                        Nonce = nonce
                                        Salt = salt
                                        Iterations = count
                                    }

    /// client-final-message (RFC 5802 §3, §7) and the ServerSignature the server must answer with.
    let clientFinal
        hash
        (password: byte[])
        (clientFirstBare: string)
        (channelBinding: byte[])
        (serverFirstText: string)
        (first: ScramServerFirst)
        =
        let withoutProof = $"c={Convert.ToBase64String channelBinding},r={first.Nonce}"

        let authMessage =
            Encoding.UTF8.GetBytes(clientFirstBare + "," + serverFirstText + "," + withoutProof)

        let salted = hi hash password first.Salt first.Iterations
        let clientKey = hmac hash salted "Client Key"B
        let storedKey = digest hash clientKey
        let clientSignature = hmac hash storedKey authMessage
        let proof = Array.map2 (^^^) clientKey clientSignature
        let serverKey = hmac hash salted "Server Key"B
        let serverSignature = hmac hash serverKey authMessage
        Array.Clear salted
        Array.Clear clientKey

        Encoding.ASCII.GetBytes(withoutProof + ",p=" + Convert.ToBase64String proof), serverSignature

    /// Checks server-final-message (RFC 5802 §7): v= must carry the expected ServerSignature,
    /// compared in constant time; e= is the server's error.
    let verifyServerFinal hash (expected: byte[]) (message: byte[]) : Result<unit, string> =
        if not (isPrintableAscii message) then
            Error "server-final-message is not printable ASCII (RFC 5802 §7)"
        else
            let first = (Encoding.ASCII.GetString message).Split(',')[0]

            match valueOf 'e' first, valueOf 'v' first with
            | Some error, _ -> Error $"the server reported the SCRAM error {Err.quote error} (RFC 5802 §7)"
            | None, Some verifier ->
                match strictBase64 verifier with
                | Some signature when
                    signature.Length = hashLength hash
                    && CryptographicOperations.FixedTimeEquals(ReadOnlySpan signature, ReadOnlySpan expected)
                    ->
                    Ok()
                | _ ->
                    Error
                        "the server's signature does not verify: the server does not know the password, or the exchange was tampered with (RFC 5802 §5)"
            | None, None -> Error "server-final-message is neither v= nor e= (RFC 5802 §7)"
