/// The client side of SCRAM (RFC 5802 §3, RFC 7677), -PLUS included, written from the RFCs for tests
/// that play it against the server over the wire. Not the library's client: a few lines of
/// arithmetic, so a server bug cannot hide behind a shared implementation.
module Pop3Functional.Simulator.Tests.ScramClient

open System
open System.Security.Cryptography
open System.Text

let private utf8 (s: string) = Encoding.UTF8.GetBytes s

let private isSha1 (mechanism: string) =
    mechanism.StartsWith("SCRAM-SHA-1", StringComparison.Ordinal)

let private hmac mechanism (key: byte[]) (data: byte[]) =
    if isSha1 mechanism then
        HMACSHA1.HashData(key, data)
    else
        HMACSHA256.HashData(key, data)

let private hash mechanism (data: byte[]) =
    if isSha1 mechanism then
        SHA1.HashData data
    else
        SHA256.HashData data

/// The gs2-header a client sends: "p=tls-server-end-point,," for -PLUS, "n,," otherwise.
let gs2HeaderFor (mechanism: string) =
    if mechanism.EndsWith("-PLUS", StringComparison.Ordinal) then
        "p=tls-server-end-point,,"
    else
        "n,,"

/// The attributes of a SCRAM message by letter.
let attributes (message: string) =
    message.Split ',' |> Array.map (fun p -> p[0], p[2..]) |> Map.ofArray

/// client-final-message for server-first-message, and the server-final-message ("v=...") a
/// correct server sends back. binding is the channel-binding data c= carries after the gs2-header
/// (empty without p=).
let clientFinal
    (mechanism: string)
    (password: string)
    (gs2Header: string)
    (binding: byte[])
    (clientFirstBare: string)
    (serverFirst: string)
    =
    let a = attributes serverFirst

    let algorithm, length =
        if isSha1 mechanism then
            HashAlgorithmName.SHA1, 20
        else
            HashAlgorithmName.SHA256, 32

    let salted =
        Rfc2898DeriveBytes.Pbkdf2(utf8 password, Convert.FromBase64String a['s'], int a['i'], algorithm, length)

    let clientKey = hmac mechanism salted (utf8 "Client Key")
    let storedKey = hash mechanism clientKey
    let cbindInput = Array.append (utf8 gs2Header) binding
    let withoutProof = $"c={Convert.ToBase64String cbindInput},r={a['r']}"
    let authMessage = utf8 (clientFirstBare + "," + serverFirst + "," + withoutProof)
    let proof = Array.map2 (^^^) clientKey (hmac mechanism storedKey authMessage)
    let serverKey = hmac mechanism salted (utf8 "Server Key")
    let serverSignature = hmac mechanism serverKey authMessage

    withoutProof + ",p=" + Convert.ToBase64String proof, "v=" + Convert.ToBase64String serverSignature

/// The tls-server-end-point data (RFC 5929 §4.1) of the simulator's ECDSA P-256/SHA-256
/// certificates, computed here from the DER encoding: SHA-256.
let serverEndPoint (certificateDer: byte[]) = SHA256.HashData certificateDer
