namespace Pop3Functional.Simulator

open System
open System.Net
open System.Security.Cryptography
open System.Security.Cryptography.X509Certificates

/// The simulator's TLS certificate: a self-signed one made in memory, its fingerprint, and the
/// channel-binding data a server derives from it.
[<RequireQualifiedAccess>]
module SimulatorCertificate =

    let private serverAuthOid = "1.3.6.1.5.5.7.3.1"

    /// A self-signed ECDSA P-256 certificate signed with SHA-256, for a server named subjectName:
    /// subject CN=subjectName; subject alternative names DNS "localhost" (and subjectName, as a
    /// DNS name or an IP address), IP 127.0.0.1 and ::1; the server-authentication extended key
    /// usage; valid from a day ago to a year from now. It is round-tripped through PKCS#12 so
    /// SslStream can use its private key on every operating system. Dispose it when done.
    let create (subjectName: string) : X509Certificate2 =
        ArgumentException.ThrowIfNullOrWhiteSpace subjectName
        use key = ECDsa.Create(ECCurve.NamedCurves.nistP256)
        let subject = X500DistinguishedNameBuilder()
        subject.AddCommonName subjectName

        let request = CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256)

        let names = SubjectAlternativeNameBuilder()
        names.AddDnsName "localhost"

        match IPAddress.TryParse subjectName with
        | true, ip when ip <> IPAddress.Loopback && ip <> IPAddress.IPv6Loopback -> names.AddIpAddress ip
        | true, _ -> ()
        | false, _ when not (String.Equals(subjectName, "localhost", StringComparison.OrdinalIgnoreCase)) ->
            names.AddDnsName subjectName
        | false, _ -> ()

        names.AddIpAddress IPAddress.Loopback
        names.AddIpAddress IPAddress.IPv6Loopback
        request.CertificateExtensions.Add(names.Build())

        let usages = OidCollection()
        usages.Add(Oid(serverAuthOid, "Server Authentication")) |> ignore
        request.CertificateExtensions.Add(X509EnhancedKeyUsageExtension(usages, false))

        request.CertificateExtensions.Add(X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true))
        request.CertificateExtensions.Add(X509BasicConstraintsExtension(false, false, 0, true))

        request.CertificateExtensions.Add(
            X509SubjectKeyIdentifierExtension(request.PublicKey, X509SubjectKeyIdentifierHashAlgorithm.Sha256, false)
        )

        let now = DateTimeOffset.UtcNow
        use ephemeral = request.CreateSelfSigned(now.AddDays -1.0, now.AddYears 1)
        // A throwaway password: some platforms handle password-less PKCS#12 files poorly.
        let password = Convert.ToHexString(RandomNumberGenerator.GetBytes 16)
        let pfx = ephemeral.Export(X509ContentType.Pkcs12, password)
        X509CertificateLoader.LoadPkcs12(pfx, password)

    /// The certificate's SHA-256 fingerprint: "sha256:" followed by 64 lowercase hex digits, no
    /// separators (the hash of the DER encoding).
    let sha256Fingerprint (certificate: X509Certificate2) : string =
        ArgumentNullException.ThrowIfNull certificate
        "sha256:" + Convert.ToHexStringLower(SHA256.HashData(certificate.RawData))

    /// The tls-server-end-point channel binding (RFC 5929 §4.1): the hash of the certificate's
    /// DER encoding with the hash function of its signature algorithm, SHA-256 when that is MD5 or
    /// SHA-1 (or unknown). For the certificates create makes, SHA-256 of the DER encoding.
    let serverEndPointBinding (certificate: X509Certificate2) : byte[] =
        ArgumentNullException.ThrowIfNull certificate

        match certificate.SignatureAlgorithm.Value with
        | "1.2.840.113549.1.1.12" // sha384WithRSAEncryption
        | "1.2.840.10045.4.3.3" -> // ecdsa-with-SHA384
            SHA384.HashData(certificate.RawData)
        | "1.2.840.113549.1.1.13" // sha512WithRSAEncryption
        | "1.2.840.10045.4.3.4" -> // ecdsa-with-SHA512
            SHA512.HashData(certificate.RawData)
        | _ -> SHA256.HashData(certificate.RawData)

    /// A self-signed server certificate, for C# (the same as create subjectName). Dispose it when done.
    let Create (subjectName: string) : X509Certificate2 = create subjectName

    /// The certificate's SHA-256 fingerprint, for C# (the same as sha256Fingerprint certificate).
    let Sha256Fingerprint (certificate: X509Certificate2) : string = sha256Fingerprint certificate

    /// The tls-server-end-point channel binding, for C# (the same as serverEndPointBinding certificate).
    let ServerEndPointBinding (certificate: X509Certificate2) : byte[] = serverEndPointBinding certificate
