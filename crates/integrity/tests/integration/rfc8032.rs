//! RFC 8032 §7.1 known-answer vectors. Vectors 2 and 3 were also reproduced with
//! `openssl pkeyutl -sign -rawin` when they were added.

use cairn_integrity::{PublicKey, Signature, SigningKey};

struct Vector {
    secret: &'static str,
    public: &'static str,
    message: &'static str,
    signature: &'static str,
}

const VECTORS: &[Vector] = &[
    Vector {
        secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message: "",
        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                    5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    Vector {
        secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message: "72",
        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                    085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    Vector {
        secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message: "af82",
        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac\
                    18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
];

fn bytes32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

#[test]
fn signatures_match_the_rfc() {
    for (i, v) in VECTORS.iter().enumerate() {
        let key = SigningKey::from_seed(&bytes32(v.secret));
        assert_eq!(
            hex::encode(key.public_key().to_bytes()),
            v.public,
            "vector {i}: public key"
        );
        let message = hex::decode(v.message).unwrap();
        let sig = key.sign(&message);
        assert_eq!(sig.to_hex(), v.signature, "vector {i}: signature");
        let public = PublicKey::from_bytes(&bytes32(v.public)).unwrap();
        public.verify(&message, &sig).unwrap();
    }
}

#[test]
fn any_changed_bit_fails_verification() {
    let v = &VECTORS[2];
    let public = PublicKey::from_bytes(&bytes32(v.public)).unwrap();
    let message = hex::decode(v.message).unwrap();
    let good = Signature::from_hex(v.signature).unwrap();
    for byte in 0..64 {
        for bit in 0..8 {
            let mut raw = good.to_bytes();
            raw[byte] ^= 1 << bit;
            assert!(
                public
                    .verify(&message, &Signature::from_bytes(raw))
                    .is_err(),
                "flipped bit {bit} of byte {byte} accepted"
            );
        }
    }
    let mut other = message.clone();
    other[0] ^= 1;
    assert!(public.verify(&other, &good).is_err());
}

#[test]
fn non_canonical_signature_is_refused() {
    // S + L (the group order) is the same scalar mod L: verify_strict must refuse it.
    let v = &VECTORS[1];
    let public = PublicKey::from_bytes(&bytes32(v.public)).unwrap();
    let message = hex::decode(v.message).unwrap();
    let mut raw = Signature::from_hex(v.signature).unwrap().to_bytes();
    let order: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(raw[32 + i]) + u16::from(order[i]) + carry;
        raw[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert!(
        public
            .verify(&message, &Signature::from_bytes(raw))
            .is_err()
    );
}
