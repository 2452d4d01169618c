# The site's configuration, done by t/ownlib/OwnPage.pm into its package.
$Conf{Language} = 'en';
1;
