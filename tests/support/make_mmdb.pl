#!/usr/bin/perl
# Builds a small MaxMind DB (.mmdb) from a JSON spec, for the geo enrichment tests and benchmark.
#
#   perl tests/support/make_mmdb.pl SPEC.json OUT.mmdb
#
# The spec:
#   {
#     "database_type": "GeoLite2-City",       // metadata database_type
#     "ip_version": 6,                         // 4 or 6; 6 aliases ::ffff:0:0/96 to IPv4
#     "record_size": 28,                       // 24, 28 or 32
#     "build_epoch": 1700000000,               // optional, default now
#     "languages": ["en"],                     // optional
#     "description": {"en": "..."},            // optional
#     "types": {"latitude": "utf8_string"},    // optional: override a key's type (bad-data tests)
#     "networks": [
#       {"network": "81.2.69.0/24", "data": { GeoIP2 City-shaped or ASN-shaped record }},
#       ...
#     ]
#   }
#
# Networks are inserted in order (a later one wins where they overlap). Reserved networks (the
# documentation ranges the fixtures use) are allowed. Every key in the data must have a type
# below or in "types"; an unknown key is an error, so a typo in a fixture cannot go unnoticed.
# The output is written to OUT.mmdb.tmp and renamed, so a reader never sees half a file.
use strict;
use warnings;

use JSON::PP ();
use MaxMind::DB::Writer::Tree ();

die "usage: $0 SPEC.json OUT.mmdb\n" unless @ARGV == 2;
my ( $spec_path, $out_path ) = @ARGV;

my $spec = do {
    open my $fh, '<:raw', $spec_path or die "$spec_path: $!\n";
    local $/;
    my $text = <$fh>;
    JSON::PP->new->utf8->relaxed->decode($text);
};

# Types of the keys in GeoIP2 City / Country, GeoLite2 ASN and DB-IP lite records.
my %types = (
    # maps
    city                => 'map',
    continent           => 'map',
    country             => 'map',
    location            => 'map',
    names               => 'map',
    postal              => 'map',
    registered_country  => 'map',
    represented_country => 'map',
    traits              => 'map',
    subdivisions        => [ 'array', 'map' ],

    # values
    accuracy_radius                => 'uint16',
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
    code                           => 'utf8_string',
    confidence                     => 'uint16',
    geoname_id                     => 'uint32',
    is_anonymous_proxy             => 'boolean',
    is_in_european_union           => 'boolean',
    is_satellite_provider          => 'boolean',
    iso_code                       => 'utf8_string',
    latitude                       => 'double',
    longitude                      => 'double',
    metro_code                     => 'uint16',
    network                        => 'utf8_string',
    time_zone                      => 'utf8_string',
    type                           => 'utf8_string',

    # names.<language>
    map { $_ => 'utf8_string' } qw(de en es fr ja pt-BR ru zh-CN),
);
if ( my $override = $spec->{types} ) {
    $types{$_} = $override->{$_} for keys %{$override};
}

my $callback = sub {
    my $key = shift;
    return $types{$key} if exists $types{$key};
    die "$spec_path: no type for key '$key' (add it to make_mmdb.pl or to the spec's types)\n";
};

my %args = (
    ip_version               => $spec->{ip_version}  // 6,
    record_size              => $spec->{record_size} // 28,
    database_type            => $spec->{database_type} // 'Switchyard-Test',
    languages                => $spec->{languages}   // ['en'],
    description              => $spec->{description} // { en => 'Switchyard test database' },
    map_key_type_callback    => $callback,
    remove_reserved_networks => 0,
);
$args{alias_ipv6_to_ipv4} = 1 if $args{ip_version} == 6;
my $tree = MaxMind::DB::Writer::Tree->new(%args);
$tree->_set_build_epoch( $spec->{build_epoch} ) if defined $spec->{build_epoch};

# JSON true/false arrive as JSON::PP::Boolean objects; the writer wants plain scalars.
sub plain {
    my $v = shift;
    return $v ? 1 : 0 if JSON::PP::is_bool($v);
    return { map { $_ => plain( $v->{$_} ) } keys %{$v} } if ref $v eq 'HASH';
    return [ map { plain($_) } @{$v} ] if ref $v eq 'ARRAY';
    return $v;
}

for my $n ( @{ $spec->{networks} // [] } ) {
    die "$spec_path: a network entry needs 'network' and 'data'\n"
        unless defined $n->{network} && ref $n->{data} eq 'HASH';
    $tree->insert_network( $n->{network}, plain( $n->{data} ) );
}

my $tmp = "$out_path.tmp";
open my $out, '>:raw', $tmp or die "$tmp: $!\n";
$tree->write_tree($out);
close $out or die "$tmp: $!\n";
rename $tmp, $out_path or die "rename $tmp to $out_path: $!\n";
