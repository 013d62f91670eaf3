// The one list of built-in destinations. Adding a destination = one folder + one line here.
#include "destinations/file/file_destination.h"
#include "destinations/kafka/kafka_destination.h"
#include "destinations/null/null_destination.h"
#include "destinations/registry.h"
#include "destinations/warehouse/warehouse_destination.h"
#include "destinations/webhook/webhook_destination.h"

namespace switchyard::destinations {

void register_builtin(registry& r) {
    r.add("file", &make_file_destination);
    r.add("kafka", &make_kafka_destination);
    r.add("null", &make_null_destination);
    r.add("postgres", &make_postgres_destination);
    r.add("sqlite", &make_sqlite_destination);
    r.add("webhook", &make_webhook_destination);
}

}  // namespace switchyard::destinations
