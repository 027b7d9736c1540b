"""Tariffs and residual lines carry their carrier.

A tariff was keyed by its ``from_slot`` alone; a heat tariff may start at the same slot as an
electricity one, so the table is rebuilt with its own id and one tariff a slot and carrier: the
old rows are copied as electricity's (the only carrier that had tariffs).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def copy_tariffs(apps: Any, schema_editor: Any) -> None:
    old = apps.get_model("market", "OldTariff")
    new = apps.get_model("market", "Tariff")
    new.objects.bulk_create(
        new(
            carrier="electricity",
            from_slot=row.from_slot,
            bands=row.bands,
            tx=row.tx,
            height=row.height,
            published_at=row.published_at,
        )
        for row in old.objects.all()
    )


def copy_back(apps: Any, schema_editor: Any) -> None:
    old = apps.get_model("market", "OldTariff")
    new = apps.get_model("market", "Tariff")
    old.objects.bulk_create(
        old(
            from_slot=row.from_slot,
            bands=row.bands,
            tx=row.tx,
            height=row.height,
            published_at=row.published_at,
        )
        for row in new.objects.filter(carrier="electricity")
    )


CARRIER = models.CharField(
    choices=[("electricity", "Electricity"), ("heat", "Heat")],
    db_index=True,
    default="electricity",
    max_length=16,
)


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0010_merge_0009_carriers_0009_contract_kind_flexibility"),
    ]

    operations = [
        migrations.RenameModel(old_name="Tariff", new_name="OldTariff"),
        migrations.CreateModel(
            name="Tariff",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("carrier", CARRIER),
                ("from_slot", models.DateTimeField()),
                ("bands", models.JSONField()),
                ("tx", models.CharField(max_length=64)),
                ("height", models.BigIntegerField()),
                ("published_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["-from_slot", "carrier"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("carrier", "from_slot"), name="one_tariff_a_slot"
                    )
                ],
            },
        ),
        migrations.RunPython(copy_tariffs, copy_back),
        migrations.DeleteModel(name="OldTariff"),
        migrations.AddField(model_name="gridsettlement", name="carrier", field=CARRIER),
        migrations.AlterField(
            model_name="gridsettlement",
            name="import_wh",
            field=models.BigIntegerField(
                help_text="Metered, the household's meters of the carrier."
            ),
        ),
        migrations.RemoveConstraint(model_name="gridsettlement", name="one_residual_a_slot"),
        migrations.AddConstraint(
            model_name="gridsettlement",
            constraint=models.UniqueConstraint(
                fields=("slot", "account", "carrier"), name="one_residual_a_slot_and_carrier"
            ),
        ),
    ]
