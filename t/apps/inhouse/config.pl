# Site configuration, read by every page with `do "config.pl"`, as the
# site's admins have edited it for years. Sets globals; returns true.
$SITE_NAME    = 'Acme Parts Inventory';
$PAGE_SIZE    = 6;
$CURRENCY     = 'EUR';
$REPORT_LINES = 14;    # lines per page of the printed report
%CATEGORY_NAMES = (
    bolt   => 'Bolts & nuts',
    tool   => 'Tools',
    paint  => 'Paint',
    spare  => 'Spare parts',
);
@ADMINS = ('alice');
1;
